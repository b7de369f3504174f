//! The `dsf-cli` binary: parses the command line, runs the command of the `dsf_cli` library,
//! and exits with its code.

use clap::Parser;
use dsf_cli::Cli;
use dsf_cli::ui::{Ui, exit};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let color = match cli.global.color.as_str() {
        "always" => Some(true),
        "never" => Some(false),
        _ => None,
    };
    let ui = Ui::new(cli.global.json, cli.global.quiet, color);
    // Object graphs may be deep: render and parse them on a thread with a large stack.
    let worker = std::thread::Builder::new()
        .name("dsf-cli".into())
        .stack_size(512 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(dsf_cli::run(cli.global.chdir, cli.command, ui))
        })
        .expect("a worker thread");
    let result = worker.join().unwrap_or_else(|_| Err(anyhow::anyhow!("dsf-cli crashed")));
    let code = match result {
        Ok(code) => code,
        Err(e) => dsf_cli::report(&ui, &e),
    };
    std::process::exit(code);
}
