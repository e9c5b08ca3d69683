//! `stampede gameday` at the terminal: the prompt (or a script), the branches' story written
//! when done.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Exit;
use crate::prepare;

/// `stampede gameday`: the scenario at `path` replayed as a gameday, from a terminal or a
/// `script`, its story written to `out`.
pub fn gameday_command(
    path: &Path,
    seed: Option<u64>,
    script: Option<&Path>,
    out: Option<PathBuf>,
) -> ExitCode {
    use std::io::IsTerminal as _;
    let prepared = match prepare(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.into();
        }
    };
    // A script is read whole first: a mistake in it is found before anything runs.
    let lines: Option<Vec<(usize, String)>> = match script {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(text) => {
                let lines: Vec<(usize, String)> = text
                    .lines()
                    .enumerate()
                    .map(|(i, l)| (i + 1, l.to_string()))
                    .collect();
                for (n, l) in &lines {
                    if let Err(e) = crate::commands::gameday::command::parse(l) {
                        eprintln!("error: {}:{n}: {e}", file.display());
                        return Exit::Usage.into();
                    }
                }
                Some(lines)
            }
            Err(e) => {
                eprintln!("error: reading {}: {e}", file.display());
                return Exit::Usage.into();
            }
        },
        None => None,
    };
    let out = out.unwrap_or_else(|| {
        PathBuf::from("runs")
            .join("gameday")
            .join(&prepared.scenario.name)
    });
    let seed = seed.unwrap_or(prepared.scenario.seed);
    println!(
        "stampede gameday {} (seed {}): {} of virtual time; `help` lists the commands",
        prepared.scenario.name,
        seed,
        humantime::format_duration(prepared.scenario.duration.0)
    );
    let mut g = match crate::commands::gameday::Gameday::start(prepared, seed) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("internal error: {e}");
            return Exit::Internal.into();
        }
    };
    println!("{}", g.pause_line());
    let interactive = lines.is_none() && std::io::stdin().is_terminal();
    let mut editor = if interactive {
        match rustyline::DefaultEditor::new() {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("internal error: the line editor: {e}");
                return Exit::Internal.into();
            }
        }
    } else {
        None
    };
    let mut script_lines = lines.map(|l| l.into_iter());
    let stdin = std::io::stdin();
    loop {
        let prompt = g.prompt();
        let line = if let Some(lines) = script_lines.as_mut() {
            match lines.next() {
                Some((_, l)) => {
                    if !l.trim().is_empty() {
                        println!("{prompt}{l}");
                    }
                    l
                }
                None => break,
            }
        } else if let Some(editor) = editor.as_mut() {
            match editor.readline(&prompt) {
                Ok(l) => {
                    if !l.trim().is_empty() {
                        let _ = editor.add_history_entry(l.as_str());
                    }
                    l
                }
                Err(_) => break,
            }
        } else {
            let mut l = String::new();
            match stdin.read_line(&mut l) {
                Ok(0) | Err(_) => break,
                Ok(_) => l,
            }
        };
        let cmd = match crate::commands::gameday::command::parse(&line) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                println!("error: {e}");
                continue;
            }
        };
        let quit = cmd == crate::commands::gameday::command::Command::Quit;
        match g.execute(cmd) {
            Ok(said) if !said.is_empty() => println!("{}", said.trim_end()),
            Ok(_) => {}
            Err(e) => println!("error: {e}"),
        }
        if quit {
            break;
        }
    }
    println!("running every branch to its end...");
    if let Err(e) = g.finish_all() {
        eprintln!("internal error: {e}");
        return Exit::Internal.into();
    }
    let written = std::fs::create_dir_all(&out)
        .and_then(|()| {
            crate::commands::sweep::write_whole(
                &out.join("timeline.md"),
                &crate::commands::gameday::story::timeline_md(&g),
            )
        })
        .and_then(|()| {
            let mut json =
                serde_json::to_string_pretty(&crate::commands::gameday::story::gameday_json(&g))
                    .expect("gameday.json serialises");
            json.push('\n');
            crate::commands::sweep::write_whole(&out.join("gameday.json"), &json)
        });
    if let Err(e) = written {
        eprintln!("internal error: writing {}: {e}", out.display());
        return Exit::Internal.into();
    }
    println!(
        "{}",
        crate::commands::gameday::story::outcomes(&g).trim_end()
    );
    println!(
        "\n  gameday dir  {}  (timeline.md, gameday.json)",
        out.display()
    );
    Exit::Pass.into()
}
