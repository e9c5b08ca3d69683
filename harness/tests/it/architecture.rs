//! Architecture invariants that the compiler does not keep: the checkers are pure functions of
//! the event log, so nothing under `harness/src/judge/invariants/` may import any other part of the
//! harness than the log (`events`) and its durations (`span`); and the system and the fakes,
//! which know nothing of each other, agree on the correlation headers.

use crate::repo;

#[test]
fn the_checkers_import_nothing_of_the_harness_but_the_log() {
    let dir = repo("harness/src/judge/invariants");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    assert!(files.len() > 30, "the checkers are in {}", dir.display());
    let allowed = ["crate::events", "crate::span", "crate::judge::invariants"];
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let path = &code[at..];
                if !allowed.iter().any(|a| path.starts_with(a)) {
                    problems.push(format!(
                        "{}:{}: {}",
                        file.file_name().unwrap().to_string_lossy(),
                        i + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "checkers must read only the event log; these lines reach into the harness:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_system_sends_the_correlation_headers_the_fakes_log() {
    // The system and the fakes know nothing of each other, so each names the headers itself.
    use stampede_fakes::provider::call as fakes;
    use stampede_system::{aws_http, guard};
    assert_eq!(guard::OP_HEADER, fakes::OP_HEADER);
    assert_eq!(guard::ATTEMPT_HEADER, fakes::ATTEMPT_HEADER);
    assert_eq!(guard::QUERY_HEADER, fakes::QUERY_HEADER);
    assert_eq!(aws_http::INVOCATION_HEADER, fakes::INVOCATION_HEADER);
}

#[test]
fn reports_depend_on_no_other_crate_of_the_workspace() {
    // `reports` takes plain data in: it must not learn of the simulation, the system or the
    // fakes, so that its pages can be drawn from any run directory.
    let manifest = std::fs::read_to_string(repo("reports/Cargo.toml")).unwrap();
    for other in [
        "stampede-system",
        "stampede-fakes",
        "stampede\"",
        "stampede =",
    ] {
        assert!(
            !manifest.contains(other),
            "reports/Cargo.toml names {other}:\n{manifest}"
        );
    }
    assert!(manifest.contains("[dependencies]"));
}

/// One source file of a crate: its module path (`["judge", "checks"]`; `[]` for the crate
/// root) and its code, comments and test modules left out.
struct Module {
    path: Vec<String>,
    code: String,
}

/// The crate's files under `src/`, each as a [`Module`]; a binary's root (`main.rs`) is left out:
/// it reaches the library by the crate's name, as any user does.
fn modules(src: &std::path::Path) -> Vec<Module> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let mut path: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            match path.last().map(String::as_str) {
                Some("main") if path.len() == 1 => continue,
                Some("mod") | Some("lib") => {
                    path.pop();
                }
                _ => {}
            }
            let text = std::fs::read_to_string(&p).unwrap();
            out.push(Module {
                path,
                code: code_of(&text),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The code of a file without its comments and its `#[cfg(test)]` modules (which may import
/// anything: they are not part of the structure).
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut skipping: Option<usize> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(indent) = skipping {
            let here = line.len() - trimmed.len();
            if trimmed == "}" && here == indent {
                skipping = None;
            }
            continue;
        }
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod "))
        {
            let next = lines.next().unwrap_or_default();
            if next.trim_end().ends_with('{') {
                skipping = Some(next.len() - next.trim_start().len());
            }
            continue;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// Which module of `modules` each one imports: every `crate::`, `super::` and `self::` path in
/// its code, and every path that starts at a child module, resolved to the longest module path
/// it names. A crate root (`lib.rs`) is left out as a target: it declares the modules and
/// re-exports their names. So is a module's own ancestor or descendant: a folder's `mod.rs`
/// and its files are one room (children share through `super::`, the parent re-exports and
/// calls them), and the rule is that no two rooms, and no two files of one folder, import
/// each other.
fn imports(modules: &[Module]) -> Vec<std::collections::BTreeSet<usize>> {
    let index: std::collections::BTreeMap<&[String], usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.path.as_slice(), i))
        .collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    modules
        .iter()
        .map(|m| {
            let mut out = std::collections::BTreeSet::new();
            let code = &m.code;
            for (at, _) in code.match_indices("::") {
                // Only the first `::` of a path: the word before it starts the path.
                let before = &code[..at];
                let start = before.rfind(|c: char| !is_ident(c)).map_or(0, |i| i + 1);
                let head = &before[start..];
                // A path starts at `crate`, `super`, `self`, or a child module of this one.
                let child = [m.path.as_slice(), &[head.to_string()]].concat();
                let relative = !["crate", "super", "self"].contains(&head);
                if relative && !index.contains_key(child.as_slice()) {
                    continue;
                }
                if start >= 2 && &code[start - 2..start] == "::" {
                    continue;
                }
                let rest = &code[at + 2..];
                let mut segments: Vec<&str> = vec![head];
                let mut tail = rest;
                loop {
                    let end = tail.find(|c: char| !is_ident(c)).unwrap_or(tail.len());
                    if end == 0 {
                        break;
                    }
                    segments.push(&tail[..end]);
                    match tail[end..].strip_prefix("::") {
                        Some(t) => tail = t,
                        None => break,
                    }
                }
                let mut base: Vec<String> = match segments[0] {
                    "crate" => Vec::new(),
                    _ => m.path.clone(),
                };
                let mut names = segments.iter().peekable();
                if relative {
                    // `retry::delay` in `guard/mod.rs`: `guard::retry`.
                } else if segments[0] == "super" || segments[0] == "self" {
                    if segments[0] == "super" {
                        base.pop();
                    }
                    names.next();
                    while names.peek().is_some_and(|s| **s == "super") {
                        base.pop();
                        names.next();
                    }
                } else {
                    names.next();
                }
                let mut target = index.get(base.as_slice()).copied();
                for name in names {
                    base.push(name.to_string());
                    match index.get(base.as_slice()) {
                        Some(&i) => target = Some(i),
                        None => break,
                    }
                }
                if let Some(t) = target
                    && !modules[t].path.is_empty()
                    && !modules[t].path.starts_with(&m.path)
                    && !m.path.starts_with(&modules[t].path)
                {
                    out.insert(t);
                }
            }
            out
        })
        .collect()
}

/// The import circles among `modules`: each a strongly connected set of two or more files,
/// named with one import that ties each to the next (Tarjan's algorithm).
fn circles(modules: &[Module]) -> Vec<String> {
    let edges = imports(modules);
    let n = modules.len();
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut out) = (Vec::new(), 0, Vec::new());
    #[allow(clippy::too_many_arguments)]
    fn visit(
        v: usize,
        edges: &[std::collections::BTreeSet<usize>],
        index: &mut [usize],
        low: &mut [usize],
        on: &mut [bool],
        stack: &mut Vec<usize>,
        next: &mut usize,
        out: &mut Vec<Vec<usize>>,
    ) {
        index[v] = *next;
        low[v] = *next;
        *next += 1;
        stack.push(v);
        on[v] = true;
        for &w in &edges[v] {
            if index[w] == usize::MAX {
                visit(w, edges, index, low, on, stack, next, out);
                low[v] = low[v].min(low[w]);
            } else if on[w] {
                low[v] = low[v].min(index[w]);
            }
        }
        if low[v] == index[v] {
            let mut scc = Vec::new();
            while let Some(w) = stack.pop() {
                on[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                out.push(scc);
            }
        }
    }
    let mut sccs = Vec::new();
    for v in 0..n {
        if index[v] == usize::MAX {
            visit(
                v, &edges, &mut index, &mut low, &mut on, &mut stack, &mut next, &mut sccs,
            );
        }
    }
    let name = |i: usize| format!("{}.rs", modules[i].path.join("/"));
    for scc in sccs {
        let ties: Vec<String> = scc
            .iter()
            .flat_map(|&a| {
                edges[a]
                    .iter()
                    .filter(|b| scc.contains(b))
                    .map(move |&b| format!("{} -> {}", name(a), name(b)))
            })
            .collect();
        out.push(ties.join(", "));
    }
    out
}

#[test]
fn no_crate_has_an_import_circle() {
    for krate in ["harness", "system", "fakes", "reports"] {
        let modules = modules(&repo(&format!("{krate}/src")));
        assert!(modules.len() > 5, "{krate} has its modules");
        let found = circles(&modules);
        assert!(
            found.is_empty(),
            "{krate} has import circles (a file imports one that imports it, maybe through \
             others); move what both need to a module of its own:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn a_planted_import_circle_is_found() {
    // The judge's checkers are used by the run command; a checker that imported the run command
    // would close a circle through three rooms.
    let mut modules = modules(&repo("harness/src"));
    let plant = modules
        .iter_mut()
        .find(|m| m.path == ["judge", "checks"])
        .expect("judge/checks.rs");
    plant
        .code
        .push_str("\nfn planted() { let _ = crate::commands::run::deterministic; }\n");
    let found = circles(&modules);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("judge/checks.rs -> commands/run.rs"),
        "{}",
        found[0]
    );
    // And between two files of one folder, through `super::`: the guard's rate limiter and its
    // retry module, each importing the other.
    let mut modules = self::modules(&repo("system/src"));
    let system = circles(&modules);
    assert!(system.is_empty(), "{system:?}");
    for (file, line) in [
        (["guard", "rate"], "\nuse super::retry::Retry;\n"),
        (["guard", "retry"], "\nuse super::rate::ApiLimiter;\n"),
    ] {
        let m = modules.iter_mut().find(|m| m.path == file).expect(file[1]);
        m.code.push_str(line);
    }
    let found = circles(&modules);
    assert!(
        found
            .iter()
            .any(|c| c.contains("guard/retry.rs -> guard/rate.rs")),
        "{found:?}"
    );
}

#[test]
fn the_readme_names_every_mechanism_folder() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let mut folders: Vec<String> = std::fs::read_dir(repo("scenarios/mechanisms"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert!(folders.len() > 10, "{folders:?}");
    let missing: Vec<&String> = folders
        .iter()
        .filter(|f| !readme.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not name these folders of scenarios/mechanisms/: {missing:?}"
    );
}
