//! AGENT-PROTOCOL.md's example session, sent line by line to a real agent:
//! each final answer has the members, `ok`, `kind` and `cleared` the
//! document shows (a token's and a time's value are the agent's own; a
//! heartbeat comes only when a plugin takes long, so the document's is
//! not waited for).

mod support;

use support::{Agent, Scratch};

/// The `→` request lines and, for each, the `←` final answer.
fn example() -> Vec<(String, serde_json::Value)> {
    let doc = include_str!("../AGENT-PROTOCOL.md");
    let section = &doc[doc.find("## Example").expect("the example")..];
    let block = &section[section.find("```text\n").expect("its block") + 8..];
    let block = &block[..block.find("```").expect("its end")];
    let mut pairs = Vec::new();
    let mut request = None;
    for line in block.lines() {
        if let Some(sent) = line.strip_prefix("→ ") {
            request = Some(sent.to_owned());
        } else if let Some(answer) = line.strip_prefix("← ") {
            let answer: serde_json::Value = serde_json::from_str(answer).expect("JSON");
            if answer.get("ok").is_some() {
                pairs.push((request.take().expect("a request first"), answer));
            }
        }
    }
    pairs
}

#[test]
fn the_documented_session_is_what_the_agent_answers() {
    let scratch = Scratch::new();
    // The token the document shows, with an expiry said on fd 4.
    let work = scratch.plugin(
        "work",
        r#"printf '{"expires_at": %s}' "$(( $(date +%s) + 3600 ))" >&4; echo 'eyJhbGciOi…'"#,
    );
    let ci = scratch.plugin("ci", "echo ci-token");
    let agent = Agent::start(&scratch.socket(), &[("work", &work), ("ci", &ci)]);
    let pairs = example();
    assert!(pairs.len() >= 3, "{pairs:?}");
    for (request, documented) in pairs {
        let mut connection = agent.connect();
        connection.send(format!("{request}\n").as_bytes());
        let answer = connection.final_answer();
        let keys = |value: &serde_json::Value| {
            let mut keys: Vec<String> = value
                .as_object()
                .expect("an object")
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&answer), keys(&documented), "{request}: {answer}");
        for member in ["v", "ok", "kind", "cleared"] {
            assert_eq!(
                answer.get(member),
                documented.get(member),
                "{request}: {member} in {answer}"
            );
        }
    }
}
