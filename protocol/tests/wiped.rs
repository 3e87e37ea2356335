//! Secrets the host handles leave no copy behind: no memory block the host
//! frees during a run still holds a secret environment value the caller
//! passed in (`RunOptions::env`, say a client secret) or the token the
//! plugin printed.
//!
//! Its own test binary: the global allocator here looks into every block
//! freed while a run is watched.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use authplug_protocol::host::{run, PluginCommand, RunOptions};
use authplug_protocol::State;
use zeroize::Zeroize;

/// Unlikely to be anywhere else in this process's memory by chance.
const SECRET: &[u8] = b"authplug-wipe-check-7f3a9c1e5b2d8046-client-secret";

static WATCHING: AtomicBool = AtomicBool::new(false);
static UNWIPED: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, handing out zeroed blocks (so every byte of a
/// block is initialised when it is looked into) and counting the freed
/// blocks that still hold `SECRET` while `WATCHING` is set. Reallocation is
/// the trait's default: allocate, copy, free, so an old block is looked
/// into too.
struct Watchful;

// SAFETY: every method forwards to the system allocator, which upholds the
// trait's contract; dealloc only reads the block before freeing it.
unsafe impl GlobalAlloc for Watchful {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::SeqCst) {
            // SAFETY: the block is ours until freed below, and every byte of
            // it was initialised (zeroed at allocation).
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(SECRET.len()).any(|window| window == SECRET) {
                UNWIPED.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watchful = Watchful;

#[tokio::test(flavor = "current_thread")]
async fn the_host_frees_no_unwiped_copy_of_a_secret_variable_or_the_token() {
    let mut options = RunOptions::default();
    options.env.push((
        "AUTHPLUG_TEST_SECRET".into(),
        OsString::from_vec(SECRET.to_vec()),
    ));
    // The plugin prints the secret as its token: it went through the
    // environment to the plugin, and back through stdout.
    let command = PluginCommand::new("sh")
        .arg("-c")
        .arg(r#"printf '%s\n' "$AUTHPLUG_TEST_SECRET""#);
    let state = State::default();

    WATCHING.store(true, Ordering::SeqCst);
    let output = run(&command, &state, &options).await;
    let token_arrived = matches!(&output, Ok(output) if output.token.as_bytes() == SECRET);
    drop(output);
    // Our own copy is ours to wipe, not the host's.
    for (_, value) in options.env.drain(..) {
        value.into_vec().zeroize();
    }
    WATCHING.store(false, Ordering::SeqCst);

    assert!(token_arrived, "the plugin did not print the secret back");
    assert_eq!(
        UNWIPED.load(Ordering::SeqCst),
        0,
        "blocks holding the secret were freed without being wiped"
    );
}
