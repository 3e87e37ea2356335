// An authplug plugin in Go (standard library only).
//
// It keeps an OAuth 2.0 refresh token in its JSON state and trades it at a
// token endpoint (the refresh_token grant, RFC 6749 section 6) for an
// access token, which it prints. If the server rotates refresh tokens, the
// new one is what it keeps; if the answer is unusable after a rotation, the
// new refresh token still goes back to the host (rule 4's keep-state exit).
// The first run has no state: it starts from $EXAMPLE_REFRESH_TOKEN (a real
// plugin would log in with a browser here, when AUTHPLUG_INTERACTIVE is 1).
//
//	refreshtoken --token-endpoint URL --client-id ID
//
// Go's runtime may open descriptors of its own before main runs, so "decide
// before opening any file" (rule 4) is met this way: fd 3 is the host's
// state pipe only if it is a pipe or socket open for writing (what a host
// passes, epithet included, which sets no variables); fd 4 only if the host
// also offers it (AUTHPLUG_INFO_FD); and both are marked close-on-exec first
// thing, for os/exec hands a child every descriptor that is not (rule 9).
// Standard input is the state even when it is a terminal (started by hand):
// then there is none.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
)

const (
	stateFD = 3
	infoFD  = 4
	name    = "refreshtoken (go)"
)

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
}

func fail(format string, args ...any) {
	say(format, args...)
	os.Exit(1)
}

// hostPipe says whether fd is a host's pipe: a pipe or socket open for
// writing. Marked close-on-exec either way.
func hostPipe(fd int) bool {
	syscall.CloseOnExec(fd)
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return false
	}
	kind := st.Mode & syscall.S_IFMT
	if kind != syscall.S_IFIFO && kind != syscall.S_IFSOCK {
		return false
	}
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if errno != 0 {
		return false
	}
	access := int(flags) & syscall.O_ACCMODE
	return access == syscall.O_WRONLY || access == syscall.O_RDWR
}

// offered returns the exit code the host offers in the variable, if any.
func offered(variable string) (int, bool) {
	code, err := strconv.Atoi(os.Getenv(variable))
	return code, err == nil && code > 0 && code < 256
}

var hasStateFD bool

func writeFD(fd int, data []byte) error {
	file := os.NewFile(uintptr(fd), "host pipe")
	defer file.Close()
	_, err := file.Write(data)
	return err
}

// failKeeping: the provider rotated the refresh token, then the run failed.
// The old one is spent, so the new one goes to the host (rule 4).
func failKeeping(message, refreshToken string) {
	code, ok := offered("AUTHPLUG_KEEP_STATE_EXIT")
	if hasStateFD && ok {
		state, _ := json.Marshal(map[string]string{"refresh_token": refreshToken})
		if writeFD(stateFD, state) == nil {
			say("%s (the new refresh token is kept)", message)
			os.Exit(code)
		}
	}
	fail("%s; the provider rotated the refresh token and this host cannot keep it: log in again", message)
}

// loginNeeded: only a login gets a new refresh token, and this plugin cannot
// log in. A host that offers it is told so by its exit code (rule 6), in a
// run that may not interact (in one that may, the login is not one this
// plugin can start either: an ordinary failure).
func loginNeeded(message string) {
	say("%s", message)
	if code, ok := offered("AUTHPLUG_LOGIN_NEEDED_EXIT"); ok && os.Getenv("AUTHPLUG_INTERACTIVE") == "0" {
		os.Exit(code)
	}
	os.Exit(1)
}

type answer struct {
	AccessToken  *string  `json:"access_token"`
	RefreshToken *string  `json:"refresh_token"`
	ExpiresIn    *float64 `json:"expires_in"`
	Error        string   `json:"error"`
	Description  string   `json:"error_description"`
}

func trade(endpoint, clientID, refreshToken string, timeout time.Duration) (string, string, *float64) {
	client := &http.Client{Timeout: timeout}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"client_id":     {clientID},
	}
	request, err := http.NewRequest("POST", endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		fail("the token endpoint %q is not a URL", endpoint)
	}
	request.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	request.Header.Set("Accept", "application/json")
	response, err := client.Do(request)
	if err != nil {
		fail("cannot reach the token endpoint %s: %v", endpoint, err)
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, 1<<20))
	if err != nil {
		fail("the token endpoint broke off its answer: %v", err)
	}
	var got answer
	parsed := json.Unmarshal(body, &got) == nil
	if response.StatusCode != http.StatusOK {
		reason := "no JSON error body"
		if parsed && got.Error != "" {
			reason = got.Error
			if got.Description != "" {
				reason += ": " + got.Description
			}
		}
		message := fmt.Sprintf("the token endpoint refused the refresh token: HTTP %d, %s", response.StatusCode, printable(reason))
		if got.Error == "invalid_grant" {
			loginNeeded(message + " (the refresh token is expired or revoked: log in again, e.g. set EXAMPLE_REFRESH_TOKEN and clear the state)")
		}
		fail("%s", message)
	}
	if !parsed {
		fail("the token endpoint answered with something that is not a JSON object")
	}
	rotated := refreshToken
	if got.RefreshToken != nil {
		if *got.RefreshToken == "" {
			fail("the token endpoint's answer has an invalid refresh_token")
		}
		rotated = *got.RefreshToken
	}
	if got.AccessToken == nil || *got.AccessToken == "" || strings.IndexFunc(*got.AccessToken, unicode.IsSpace) >= 0 {
		message := "the token endpoint's answer has no usable access_token"
		if rotated != refreshToken {
			failKeeping(message, rotated)
		}
		fail("%s", message)
	}
	lifetime := got.ExpiresIn
	if lifetime != nil && !(*lifetime > 0 && *lifetime < 10*366*24*3600 && !math.IsInf(*lifetime, 0)) {
		lifetime = nil // not said (RFC 6749 makes it optional), or unusable
	}
	return *got.AccessToken, rotated, lifetime
}

// printable keeps a server's words off the terminal's control characters.
func printable(text string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text)
}

func main() {
	// First, before anything opens a file (rules 4, 9 and 10).
	hasStateFD = hostPipe(stateFD)
	hasInfoFD := os.Getenv("AUTHPLUG_INFO_FD") == strconv.Itoa(infoFD) && hostPipe(infoFD)

	endpoint := flag.String("token-endpoint", os.Getenv("EXAMPLE_TOKEN_ENDPOINT"), "the token endpoint")
	clientID := flag.String("client-id", os.Getenv("EXAMPLE_CLIENT_ID"), "the client id")
	timeout := flag.Float64("timeout", 30, "HTTP timeout in seconds")
	flag.Parse()
	if *endpoint == "" {
		fail("no token endpoint: pass --token-endpoint URL or set EXAMPLE_TOKEN_ENDPOINT")
	}
	if *clientID == "" {
		fail("no client id: pass --client-id ID or set EXAMPLE_CLIENT_ID")
	}

	var raw []byte
	if info, err := os.Stdin.Stat(); err == nil && info.Mode()&os.ModeCharDevice == 0 {
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, 10<<20))
		if err != nil {
			fail("cannot read the state on stdin: %v", err)
		}
	}
	var state map[string]string
	if len(raw) > 0 && json.Unmarshal(raw, &state) != nil {
		fail("the state is not a JSON object; it was not written by this plugin")
	}
	refreshToken := state["refresh_token"]
	if refreshToken == "" {
		refreshToken = os.Getenv("EXAMPLE_REFRESH_TOKEN")
		if refreshToken == "" {
			loginNeeded("no refresh token yet: set EXAMPLE_REFRESH_TOKEN for the first run")
		}
	}
	if os.Getenv("AUTHPLUG_REASON") == "rejected" {
		say("the last token was rejected; getting a new one")
	}

	started := time.Now()
	accessToken, rotated, lifetime := trade(*endpoint, *clientID, refreshToken, time.Duration(*timeout*float64(time.Second)))

	newState, _ := json.Marshal(map[string]string{"refresh_token": rotated})
	if hasStateFD {
		if err := writeFD(stateFD, newState); err != nil {
			fail("cannot hand the state to the host: %v", err)
		}
	} else {
		say("no fd 3 (not started by a host), so the new refresh token is lost")
	}
	if hasInfoFD && lifetime != nil {
		// Counted from before the request: never later than the server meant.
		info := fmt.Sprintf(`{"expires_at": %d}`, started.Unix()+int64(*lifetime))
		_ = writeFD(infoFD, []byte(info))
	}
	os.Stdout.WriteString(accessToken + "\n")
}
