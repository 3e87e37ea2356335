// A minimal oidc-provider (9.13.3) for the OIDC plugin's benchmarks only:
// one native public client, refresh tokens issued and NOT rotated (so the
// same refresh token can be traded again and again, by every contender).
// Prints its issuer on stdout when ready. Use scripts/dev-idp for anything
// else.
import Provider from 'oidc-provider';
import http from 'node:http';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: ['http://127.0.0.1/callback'],
  }],
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  pkce: { required: () => true },
  rotateRefreshToken: false,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: { IdToken: 3600, AccessToken: 3600, RefreshToken: 86400 },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  loadExistingGrant: async (ctx) => {
    // Auto-consent: the bench logs in once without a consent page.
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid offline_access profile email');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
server.on('request', provider.callback());
console.log(issuer);
