//! `mcp-load relay -- CMD ARGS...`: the cheapest possible stdio proxy (two
//! threads copying lines, no parsing, no policy), as a baseline for what one
//! extra process hop costs on this machine.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Command, Stdio};

/// Copies lines from `input` to `output`, flushing when no further input is buffered.
fn pump(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut output = BufWriter::with_capacity(64 * 1024, output);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return output.flush();
        }
        output.write_all(&line)?;
        if input.buffer().is_empty() {
            output.flush()?;
        }
    }
}

/// Runs the relay; returns the child's exit code.
pub fn run(command: &[OsString]) -> io::Result<i32> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "relay: no command after --"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let child_in = child.stdin.take().expect("piped");
    let child_out = child.stdout.take().expect("piped");
    let up = std::thread::spawn(move || pump(io::stdin().lock(), child_in));
    let down = std::thread::spawn(move || pump(child_out, io::stdout().lock()));
    let _ = up.join();
    let status = child.wait()?;
    let _ = down.join();
    Ok(status.code().unwrap_or(1))
}
