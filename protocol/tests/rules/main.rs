//! One test module per numbered rule of protocol/PROTOCOL.md, each running
//! real plugin processes (small `sh` scripts written here, and the SDK probe
//! in `examples/sdk_probe.rs`). One test binary keeps linking cheap.

mod support;

mod doc;

mod rule10_info;
mod rule1_start;
mod rule2_stdin;
mod rule3_stdout;
mod rule4_state;
mod rule5_stderr;
mod rule6_exit;
mod rule7_time;
mod rule8_leaks;
mod rule9_isolation;
