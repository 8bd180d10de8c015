//! Reading the files docker_compose's tests compare: the resolved compose
//! file (as JSON), MariaDB option files, the heredocs and grants of
//! tests/env/services.sh, Java properties, tests/env/defaults.env,
//! docker/Dockerfile's stages and Prometheus' scrape jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value as Json;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The body of the first `cat [>file] <<EOF ... EOF` heredoc after the line
/// that contains `marker`.
pub(crate) fn heredoc_after(text: &str, marker: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.contains(marker));
    assert!(
        lines.next().is_some(),
        "services.sh has no line with {marker:?}"
    );
    lines
        .skip_while(|l| !(l.trim_start().starts_with("cat ") && l.trim_end().ends_with("<<EOF")))
        .skip(1)
        .take_while(|l| l.trim() != "EOF")
        .map(str::to_owned)
        .collect()
}

/// `key = value` (or a bare `key`) lines of a MariaDB option file, keys with
/// `-` written as `_` (MariaDB treats them alike); comments and section
/// headers skipped.
pub(crate) fn cnf_pairs(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.trim().replace('-', "_"), v.trim().to_owned())
        })
        .collect()
}

pub(crate) fn cnf_file(rel: &str) -> BTreeMap<String, String> {
    let lines: Vec<String> = read(rel).lines().map(str::to_owned).collect();
    cnf_pairs(&lines)
}

/// The body of services.sh's `bootstrap_primary()` function (the lines from
/// its header up to its closing brace).
pub(crate) fn bootstrap_primary(services_sh: &str) -> String {
    services_sh
        .lines()
        .skip_while(|l| !l.starts_with("bootstrap_primary()"))
        .take_while(|l| *l != "}")
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key=value` lines of a Java properties heredoc.
pub(crate) fn properties(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// tests/env/defaults.env: `NAME=${NAME:-value}` → (NAME, value).
pub(crate) fn defaults_env() -> BTreeMap<String, String> {
    read("tests/env/defaults.env")
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('=')?;
            let value = rest
                .strip_prefix(&format!("${{{name}:-"))?
                .strip_suffix('}')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// GRANT statements of a script, one line each, with the host parts made
/// equal ('127.0.0.1' on loopback, '%' in the compose network).
pub(crate) fn grants(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("GRANT "))
        .map(|l| l.replace("'127.0.0.1'", "'%'"))
        .collect()
}

/// A YAML file as JSON, through python3's yaml module (a dependency of
/// Debian's docker-compose, so present once it is installed).
pub(crate) fn yaml_to_json(yaml: &str, what: &str) -> Json {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(yaml.as_bytes()).expect("write YAML");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{what} is not YAML python3 can read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python3")
}

/// A scalar of the resolved compose file as text (compose may keep `1` a
/// number and `"1"` a string).
pub(crate) fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// A service's environment as a map, whichever form compose printed.
pub(crate) fn environment(service: &Json) -> BTreeMap<String, String> {
    match &service["environment"] {
        Json::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Json::Array(list) => list
            .iter()
            .filter_map(|e| {
                let e = text(e);
                let (k, v) = e.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A service's bind mounts and volumes: target → source (absolute host path
/// for bind mounts, volume name otherwise).
pub(crate) fn mounts(service: &Json) -> BTreeMap<String, String> {
    service["volumes"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| match v {
                    Json::String(s) => {
                        let mut parts = s.split(':');
                        let source = parts.next()?.to_owned();
                        let target = parts.next()?.to_owned();
                        Some((target, source))
                    }
                    Json::Object(_) => Some((text(&v["target"]), text(&v["source"]))),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Published ports: (host address, host port, container port).
pub(crate) fn ports(service: &Json) -> Vec<(String, String, String)> {
    service["ports"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| match p {
                    Json::String(s) => {
                        let s = s.split('/').next().unwrap_or(s);
                        let parts: Vec<&str> = s.split(':').collect();
                        match parts.as_slice() {
                            [ip, host, container] => Some((
                                (*ip).to_owned(),
                                (*host).to_owned(),
                                (*container).to_owned(),
                            )),
                            [host, container] => {
                                Some((String::new(), (*host).to_owned(), (*container).to_owned()))
                            }
                            _ => None,
                        }
                    }
                    Json::Object(_) => Some((
                        text(&p["host_ip"]),
                        text(&p["published"]),
                        text(&p["target"]),
                    )),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn depends_on(service: &Json) -> BTreeSet<String> {
    match &service["depends_on"] {
        Json::Object(map) => map.keys().cloned().collect(),
        Json::Array(list) => list.iter().map(text).collect(),
        _ => BTreeSet::new(),
    }
}

/// `depends_on` as dependency → condition (`service_started` for the short
/// form).
pub(crate) fn depends_on_conditions(service: &Json) -> BTreeMap<String, String> {
    match &service["depends_on"] {
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let condition = match &v["condition"] {
                    Json::Null => "service_started".to_owned(),
                    c => text(c),
                };
                (k.clone(), condition)
            })
            .collect(),
        Json::Array(list) => list
            .iter()
            .map(|d| (text(d), "service_started".to_owned()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `entrypoint` or `command` as a list of words.
pub(crate) fn words(v: &Json) -> Vec<String> {
    match v {
        Json::Array(list) => list.iter().map(text).collect(),
        Json::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The text of the Dockerfile stage `FROM ... AS <stage>`, up to the next `FROM`.
pub(crate) fn dockerfile_stage<'a>(dockerfile: &'a str, stage: &str) -> &'a str {
    let header = format!(" AS {stage}\n");
    let start = dockerfile
        .match_indices(&header)
        .map(|(i, _)| i)
        .find(|&i| {
            dockerfile[..i]
                .rsplit('\n')
                .next()
                .is_some_and(|l| l.starts_with("FROM "))
        })
        .unwrap_or_else(|| panic!("docker/Dockerfile has no stage {stage}"));
    let body = &dockerfile[start + header.len()..];
    let end = body
        .match_indices("\nFROM ")
        .map(|(i, _)| i + 1)
        .next()
        .unwrap_or(body.len());
    &body[..end]
}

/// The targets of a Prometheus scrape job.
pub(crate) fn scrape_targets(prom_config: &Json, job_name: &str) -> Vec<String> {
    let job = prom_config["scrape_configs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["job_name"] == job_name))
        .unwrap_or_else(|| panic!("prometheus.yml has no scrape job named {job_name}"));
    job["static_configs"]
        .as_array()
        .map(|configs| {
            configs
                .iter()
                .flat_map(|c| c["targets"].as_array().cloned().unwrap_or_default())
                .map(|t| text(&t))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn command(service: &Json) -> Vec<String> {
    match &service["command"] {
        Json::Array(list) => list.iter().map(text).collect(),
        Json::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The target a host path (relative to the repository) is mounted at.
pub(crate) fn mounted_at(service: &Json, name: &str, rel: &str) -> String {
    let source = repo().join(rel);
    mounts(service)
        .into_iter()
        .find(|(_, s)| Path::new(s) == source)
        .map(|(t, _)| t)
        .unwrap_or_else(|| {
            panic!(
                "{name} does not mount {rel}; its volumes: {}",
                service["volumes"]
            )
        })
}
