//! The `main` the measurement binaries (`bare-codec`, `level-probe`) share.

use std::process::ExitCode;

/// Parses the arguments with `parse`, runs `run` and prints its JSON result
/// on stdout. A parse error (an empty one for `--help`) prints `usage` and
/// exits 2; a failure of `run` prints it, prefixed with `name`, and exits 1.
///
/// ```
/// use std::process::ExitCode;
/// let code = estargz_benches::tool::main("demo", "usage: demo", || Ok(2), |n| Ok(format!("{{\"n\":{n}}}")));
/// assert_eq!(code, ExitCode::SUCCESS);
/// ```
pub fn main<A>(
    name: &str,
    usage: &str,
    parse: impl FnOnce() -> Result<A, String>,
    run: impl FnOnce(A) -> Result<String, String>,
) -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{name}: {e}");
            }
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
