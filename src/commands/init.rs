//! `portcullis init`: find the MCP servers configured in the clients on
//! this machine and in the project, scan each one, write a policy with safe
//! defaults (and its tests, and the saved scan) per server, and rewrite the
//! clients' configurations so every server runs through Portcullis.
//! `portcullis init --undo` puts the configurations back. See docs/init.md.

use crate::cli::InitArgs;

#[cfg(feature = "dynamic")]
mod clients;
#[cfg(feature = "dynamic")]
mod jsonc;
#[cfg(feature = "dynamic")]
mod policy;

/// The suffix of the copy init keeps of a configuration before its first change.
#[cfg(feature = "dynamic")]
pub const BACKUP_SUFFIX: &str = ".portcullis-backup";

#[cfg(feature = "dynamic")]
fn backup_path(p: &std::path::Path) -> std::path::PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(BACKUP_SUFFIX);
    s.into()
}

/// Runs `init` (or `init --undo`); 0 on success, 1 when something needs attention.
#[cfg(feature = "dynamic")]
pub fn run(args: &InitArgs) -> i32 {
    match Init::new(args) {
        Ok(init) if args.undo => init.undo(),
        Ok(init) => init.run(),
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(feature = "dynamic")]
use imp::Init;

#[cfg(feature = "dynamic")]
mod imp {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::clients::{self, Entry, Location, Target};
    use super::{backup_path, jsonc, policy};
    use crate::cli::InitArgs;
    use crate::commands::scan::{mcp, sanitise, scaffold, shown_url};

    /// `text` with every JSON string literal whose decoded text holds one
    /// of `secrets` written `"***"` (a literal spans one line at most).
    fn mask_literals(text: &str, secrets: &[&str]) -> String {
        let b = text.as_bytes();
        let (mut out, mut done, mut i) = (String::with_capacity(text.len()), 0, 0);
        while i < b.len() {
            if b[i] != b'"' {
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            let end = (i + 1).min(b.len());
            let holds = text.get(start..end).and_then(|lit| jsonc::parse(lit).ok()).is_some_and(
                |v| matches!(&v.kind, jsonc::Kind::Str(s) if secrets.iter().any(|x| s.contains(x))),
            );
            if holds {
                out.push_str(&text[done..start]);
                out.push_str("\"***\"");
                done = end;
            }
            i = end;
        }
        out.push_str(&text[done..]);
        out
    }

    /// Everything `init` needs to know before it looks at a file.
    pub struct Init<'a> {
        args: &'a InitArgs,
        home: PathBuf,
        locations: Vec<Location>,
        policy_dir: PathBuf,
        portcullis: String,
        timeout: Duration,
    }

    /// A configuration file that parsed, with its server entries.
    struct Config {
        loc: Location,
        text: String,
        entries: Vec<Entry>,
    }

    /// One policy to write: the first entry that asked for it.
    struct Wanted {
        client: &'static str,
        file: String,
        entry: Entry,
    }

    /// `p` made absolute against the current directory, `.` components dropped.
    fn absolute(p: &Path) -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        p.components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect()
    }

    impl<'a> Init<'a> {
        pub fn new(args: &'a InitArgs) -> Result<Init<'a>, String> {
            let env_ok = !args.env.is_empty()
                && args.env != "."
                && args.env != ".."
                && args
                    .env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !env_ok {
                return Err(format!(
                    "--env `{}`: an environment is named with letters, digits, `-`, `_` or `.`",
                    args.env
                ));
            }
            if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout < 1e9) {
                return Err(format!(
                    "--timeout {} is not a positive number of seconds",
                    args.timeout
                ));
            }
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .ok_or("$HOME is not set: init looks for the clients' configurations there")?;
            let xdg = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|x| !x.is_empty())
                .map(PathBuf::from)
                .filter(|x| x.is_absolute())
                .unwrap_or_else(|| home.join(".config"));
            let project = absolute(args.project.as_deref().unwrap_or(Path::new(".")));
            let policies = absolute(&args.policies);
            let portcullis = match &args.portcullis {
                Some(p) => absolute(p),
                None => policies
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .join("dist")
                    .join(format!("portcullis-{}", args.env)),
            };
            Ok(Init {
                args,
                locations: clients::locations(&home, &xdg, &project, &args.clients),
                home,
                policy_dir: policies.join(&args.env),
                portcullis: portcullis.to_string_lossy().into_owned(),
                timeout: Duration::from_secs_f64(args.timeout),
            })
        }

        /// A path as shown: `~/...` under HOME.
        fn show(&self, p: &Path) -> String {
            match p.strip_prefix(&self.home) {
                Ok(rest) => format!("~/{}", rest.display()),
                Err(_) => p.display().to_string(),
            }
        }

        /// `init --undo`: every backup found is copied back over its file, byte for byte, and removed.
        pub fn undo(&self) -> i32 {
            let mut restored = 0;
            let mut failed = false;
            for loc in &self.locations {
                let backup = backup_path(&loc.path);
                if !backup.is_file() {
                    continue;
                }
                match std::fs::copy(&backup, &loc.path).and_then(|_| std::fs::remove_file(&backup))
                {
                    Ok(()) => {
                        restored += 1;
                        println!("restored {} ({})", self.show(&loc.path), loc.client);
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!(
                            "error: restoring {} from {}: {e}",
                            self.show(&loc.path),
                            self.show(&backup)
                        );
                    }
                }
            }
            if restored == 0 && !failed {
                println!(
                    "nothing to undo: no configuration has a {} copy",
                    super::BACKUP_SUFFIX
                );
            }
            println!("(policies under {} are kept)", self.policy_dir.display());
            i32::from(failed)
        }

        /// Reads and parses every configuration found; unparsable ones are reported.
        fn configs(&self) -> (Vec<Config>, bool) {
            let mut out = Vec::new();
            let mut bad = false;
            for loc in &self.locations {
                let text = match std::fs::read(&loc.path) {
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Ok(t) => t,
                        Err(_) => {
                            bad = true;
                            eprintln!(
                                "error: {}: not UTF-8 text; left untouched",
                                loc.path.display()
                            );
                            continue;
                        }
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        bad = true;
                        eprintln!("error: reading {}: {e}; left untouched", loc.path.display());
                        continue;
                    }
                };
                match jsonc::parse(&text) {
                    Ok(doc) => {
                        let entries = clients::entries(&doc, loc);
                        out.push(Config {
                            loc: loc.clone(),
                            text,
                            entries,
                        });
                    }
                    Err(e) => {
                        bad = true;
                        eprintln!(
                            "error: {}:{}:{}: {} ({}); this file is left untouched",
                            loc.path.display(),
                            e.line,
                            e.col,
                            e.message,
                            loc.client
                        );
                    }
                }
            }
            (out, bad)
        }

        fn policy_name(entry: &Entry) -> String {
            sanitise(&entry.name)
        }

        pub fn run(&self) -> i32 {
            let (configs, mut failed) = self.configs();
            if configs.is_empty() {
                println!("no MCP client configuration found; looked in:");
                for loc in &self.locations {
                    println!("  {:<15} {}", loc.client, self.show(&loc.path));
                }
                return i32::from(failed);
            }

            // 1. List what was found; choose one entry per policy name.
            let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
            let mut order: Vec<String> = Vec::new();
            for c in &configs {
                println!("{} {}", c.loc.client, self.show(&c.loc.path));
                if c.entries.is_empty() {
                    println!("  (no servers under `{}`)", c.loc.key);
                }
                for e in &c.entries {
                    let shown = match &e.target {
                        Target::Stdio { argv, .. } => format!("stdio  {}", argv.join(" ")),
                        Target::Http { url, headers } => {
                            let names: Vec<&str> =
                                headers.iter().map(|(k, _)| k.as_str()).collect();
                            if names.is_empty() {
                                format!("http   {}", shown_url(url))
                            } else {
                                format!("http   {} (headers: {})", shown_url(url), names.join(", "))
                            }
                        }
                    };
                    let note = if let Some(why) = &e.unsupported {
                        format!("  [left alone: {why}]")
                    } else if e.wrapped {
                        "  [already through portcullis]".to_string()
                    } else {
                        String::new()
                    };
                    println!("  {:<20} {}{note}", e.name, scaffold::one_line(&shown));
                    if e.unsupported.is_some() {
                        continue;
                    }
                    let name = Self::policy_name(e);
                    match wanted.get(&name) {
                        Some(first) if first.entry.target != e.target => eprintln!(
                            "warning: `{}` in {} is not the server of `{}` in {}: both get the policy `{name}`, scanned from the first",
                            e.name,
                            self.show(&c.loc.path),
                            first.entry.name,
                            first.file
                        ),
                        Some(_) => {}
                        None => {
                            order.push(name.clone());
                            wanted.insert(
                                name,
                                Wanted {
                                    client: c.loc.client,
                                    file: self.show(&c.loc.path),
                                    entry: e.clone(),
                                },
                            );
                        }
                    }
                }
            }
            println!();

            // 2. Scan and write a policy for each server that has none yet.
            let mut ready: Vec<String> = Vec::new();
            for name in &order {
                let w = &wanted[name];
                let file = self.policy_dir.join(format!("{name}.yaml"));
                let existing = portcullis_compiler::POLICY_EXTENSIONS
                    .iter()
                    .map(|ext| self.policy_dir.join(format!("{name}.{ext}")))
                    .find(|p| p.exists());
                if let Some(p) = existing {
                    println!("policy {name}: kept {} (already there)", p.display());
                    ready.push(name.clone());
                    continue;
                }
                if self.args.dry_run {
                    println!(
                        "policy {name}: would scan the server and write {}",
                        file.display()
                    );
                    ready.push(name.clone());
                    continue;
                }
                match self.scan_and_write(name, w) {
                    Ok(summary) => {
                        println!("policy {name}: {summary}");
                        ready.push(name.clone());
                    }
                    Err(e) => {
                        eprintln!(
                            "skipped {name} ({} {}): {e}\n  = its configuration is left as it is; fix it and run `portcullis init` again",
                            w.client, w.file
                        );
                    }
                }
            }
            println!();

            // 3. Rewrite the configurations.
            for c in &configs {
                let wrap = |e: &Entry| {
                    let n = Self::policy_name(e);
                    ready.contains(&n).then(|| self.lead(&n))
                };
                let new = match clients::rewrite(&c.text, &c.loc, &self.portcullis, &wrap) {
                    Ok(t) => t,
                    Err(e) => {
                        failed = true;
                        eprintln!(
                            "error: {}:{}:{}: {}",
                            c.loc.path.display(),
                            e.line,
                            e.col,
                            e.message
                        );
                        continue;
                    }
                };
                if new == c.text {
                    println!("unchanged {}", self.show(&c.loc.path));
                    continue;
                }
                if jsonc::parse(&new).is_err() {
                    // Cannot happen by construction; never write a file a client cannot read.
                    failed = true;
                    eprintln!(
                        "error: internal: the rewrite of {} does not parse; left untouched",
                        c.loc.path.display()
                    );
                    continue;
                }
                if self.args.dry_run {
                    print!("{}", self.diff(c, &new));
                    continue;
                }
                let backup = backup_path(&c.loc.path);
                // The backup is the file before init first changed it: never overwritten.
                if !backup.exists()
                    && let Err(e) = std::fs::copy(&c.loc.path, &backup)
                {
                    failed = true;
                    eprintln!(
                        "error: backing up {} to {}: {e}; left untouched",
                        c.loc.path.display(),
                        backup.display()
                    );
                    continue;
                }
                if let Err(e) = std::fs::write(&c.loc.path, &new) {
                    failed = true;
                    eprintln!("error: writing {}: {e}", c.loc.path.display());
                    continue;
                }
                println!(
                    "rewrote {} (backup: {})",
                    self.show(&c.loc.path),
                    self.show(&backup)
                );
            }
            if self.args.dry_run {
                println!("\n--dry-run: nothing was written");
            } else {
                println!(
                    "\nnext: review {}, run `portcullis test {}`, build the artifact the clients now start ({}) with `scripts/build-artifact {}`, and restart the clients (undo: portcullis init --undo)",
                    self.policy_dir.display(),
                    self.policy_dir.display(),
                    self.portcullis,
                    self.args.env
                );
                if !Path::new(&self.portcullis).exists() {
                    eprintln!(
                        "note: {} does not exist yet: until it is built the clients cannot start these servers",
                        self.portcullis
                    );
                }
            }
            i32::from(failed)
        }

        /// The arguments that select the policy: `--server NAME` (the
        /// policy compiled into the artifact), or with `--policy-files`
        /// `-c <policies>/<env>/NAME.<ext>` (a development build reading the file).
        fn lead(&self, name: &str) -> Vec<String> {
            if !self.args.policy_files {
                return vec!["--server".into(), name.into()];
            }
            let file = portcullis_compiler::POLICY_EXTENSIONS
                .iter()
                .map(|ext| self.policy_dir.join(format!("{name}.{ext}")))
                .find(|p| p.exists())
                .unwrap_or_else(|| self.policy_dir.join(format!("{name}.yaml")));
            vec!["-c".into(), file.to_string_lossy().into_owned()]
        }

        /// A unified diff of one configuration, header values masked.
        fn diff(&self, c: &Config, new: &str) -> String {
            let shown = c.loc.path.display().to_string();
            let d = similar::TextDiff::from_lines(c.text.as_str(), new)
                .unified_diff()
                .context_radius(3)
                .header(&shown, &shown)
                .to_string();
            let secrets: Vec<&str> = c
                .entries
                .iter()
                .filter_map(|e| match &e.target {
                    Target::Http { headers, .. } => Some(headers),
                    _ => None,
                })
                .flatten()
                .map(|(_, v)| v.as_str())
                .filter(|v| v.len() >= 4)
                .collect();
            if secrets.is_empty() {
                return d;
            }
            // Every string literal holding a header value, in whatever
            // spelling (`\"`, `\\`, `\u0041`: the file's, or the one the
            // rewrite wrote into `env`), then the value wherever else it
            // shows.
            let mut masked = mask_literals(&d, &secrets);
            for v in &secrets {
                masked = masked.replace(v, "***");
            }
            masked
        }

        /// Scans one server and writes its policy, tests, tool schemas and saved scan.
        fn scan_and_write(&self, name: &str, w: &Wanted) -> Result<String, String> {
            let (scanned, via, src_program, src_url, transport) = match &w.entry.target {
                Target::Stdio { argv, env } => {
                    if argv.is_empty() || argv[0].is_empty() {
                        return Err("the entry has an empty command".into());
                    }
                    let os: Vec<OsString> = argv.iter().map(OsString::from).collect();
                    let mut server = mcp::StdioServer::start_with_env(&os, env, self.timeout)?;
                    let program = Path::new(&argv[0])
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (
                        mcp::scan(&mut server)?,
                        format!("`{program}` (stdio)"),
                        Some(argv[0].clone()),
                        None,
                        "stdio",
                    )
                }
                Target::Http { url, headers } => {
                    let mut http = mcp::Http::new(url, headers.clone(), self.timeout)?;
                    (
                        mcp::scan(&mut http)?,
                        format!("{} (Streamable HTTP)", shown_url(url)),
                        None,
                        Some(shown_url(url)),
                        "http",
                    )
                }
            };
            let tools: Vec<scaffold::ToolInfo> = scanned
                .tools
                .iter()
                .filter_map(|raw| scaffold::tool_info(raw))
                .collect();
            let now = portcullis_core::UnixMillis::now().to_rfc3339();
            let server = scaffold::ServerInfo {
                name: scanned.name.clone(),
                version: scanned.version.clone(),
                title: scanned.title.clone(),
            };
            let found_in = format!("{} {}, {}, via {via}", w.client, w.file, w.entry.at);
            let origin = policy::Origin {
                stem: name,
                server: &server,
                found_in: &found_in,
                date: &now[..10],
            };
            let source = policy::Source {
                client: w.client,
                file: &w.file,
                entry: &w.entry.at,
                transport,
                program: src_program.as_deref(),
                url: src_url,
            };
            let dir = &self.policy_dir;
            let scan_dir = dir.join(".scan");
            std::fs::create_dir_all(&scan_dir)
                .map_err(|e| format!("creating {}: {e}", scan_dir.display()))?;
            let files = [
                (
                    dir.join(format!("{name}.tools.json")),
                    scaffold::tools_json(&scanned.tools),
                ),
                (
                    scan_dir.join(format!("{name}.json")),
                    policy::scan_json(&origin, &source, &now, &scanned.tools),
                ),
                (
                    dir.join(format!("{name}.test.yaml")),
                    policy::tests_yaml(&origin, &tools),
                ),
                (
                    dir.join(format!("{name}.yaml")),
                    policy::policy_yaml(&origin, &tools),
                ),
            ];
            for (path, text) in &files {
                std::fs::write(path, text)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            let count = |r: scaffold::Risk| tools.iter().filter(|t| t.risk == r).count();
            Ok(format!(
                "wrote {} ({} tools: {} read allowed, {} write limited, {} destructive denied)",
                files[3].0.display(),
                tools.len(),
                count(scaffold::Risk::Read),
                count(scaffold::Risk::Write),
                count(scaffold::Risk::Destructive)
            ))
        }
    }
}

/// Without the `dynamic` feature this binary has no policy writer.
#[cfg(not(feature = "dynamic"))]
pub fn run(_: &InitArgs) -> i32 {
    eprintln!(
        "error: this is a hardened build: it cannot scan servers or write policies\n  = help: run init with a development build (default features)"
    );
    2
}
