//! `checkpoint show` and `checkpoint list`, rendered as text for people or
//! as JSON for scripts. The texts are part of the command-line interface:
//! the tests below pin them.

use std::fmt::Write as _;

use super::store::Checkpoint;
use crate::map::rfc3339_seconds;

/// How a report is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

fn time(t: Option<i64>) -> String {
    t.map(rfc3339_seconds).unwrap_or_else(|| "-".into())
}

/// `checkpoint list`: the numbered history entries, newest first (text: a
/// header and one line each; JSON: one object per line).
pub fn render_history(entries: &[(u64, Checkpoint)], format: ReportFormat) -> String {
    let mut out = String::new();
    match format {
        ReportFormat::Text => {
            let _ = writeln!(
                out,
                "{:>7}  {:<20}  {:<20}  {:>10}  position",
                "entry", "written at", "commit time", "events"
            );
            for (seq, cp) in entries {
                let _ = writeln!(
                    out,
                    "{:>7}  {:<20}  {:<20}  {:>10}  {}",
                    format!("#{seq}"),
                    time(Some(cp.written_at_ms / 1000)),
                    time(cp.commit_time),
                    cp.events_published,
                    cp.position
                );
            }
        }
        ReportFormat::Json => {
            for (seq, cp) in entries {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "entry": seq,
                        "position": cp.position.to_string(),
                        "source_server_id": cp.source_server_id,
                        "commit_time": time(cp.commit_time),
                        "written_at": time(Some(cp.written_at_ms / 1000)),
                        "events_published": cp.events_published,
                    })
                );
            }
        }
    }
    out
}

/// `checkpoint show`: the live checkpoint.
pub fn render_show(checkpoint: &Checkpoint, format: ReportFormat) -> String {
    let gtid = checkpoint.position.gtid.to_string();
    let coord = checkpoint
        .position
        .coord
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let commit_time = checkpoint
        .commit_time
        .map(rfc3339_seconds)
        .unwrap_or_default();
    let written = rfc3339_seconds(checkpoint.written_at_ms / 1000);
    match format {
        ReportFormat::Text => {
            let mut out = String::new();
            let _ = writeln!(out, "position:          {}", checkpoint.position);
            let _ = writeln!(out, "gtid:              {gtid}");
            let _ = writeln!(out, "binlog:            {coord}");
            let _ = writeln!(out, "source server_id:  {}", checkpoint.source_server_id);
            let _ = writeln!(out, "commit time:       {commit_time}");
            let _ = writeln!(out, "written at:        {written}");
            let _ = writeln!(out, "events published:  {}", checkpoint.events_published);
            out
        }
        ReportFormat::Json => {
            let json = serde_json::json!({
                "position": checkpoint.position.to_string(),
                "gtid": gtid,
                "binlog": coord,
                "source_server_id": checkpoint.source_server_id,
                "commit_time": commit_time,
                "written_at": written,
                "events_published": checkpoint.events_published,
            });
            format!("{json}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            position: "0-1-42,1-3-7@mariadb-bin.000003:1234".parse().unwrap(),
            source_server_id: 2,
            commit_time: Some(1_764_152_000),
            written_at_ms: 1_764_152_001_500,
            events_published: 17,
        }
    }

    #[test]
    fn show_is_pinned_as_text_and_json() {
        assert_eq!(
            render_show(&checkpoint(), ReportFormat::Text),
            "position:          0-1-42,1-3-7@mariadb-bin.000003:1234\n\
             gtid:              0-1-42,1-3-7\n\
             binlog:            mariadb-bin.000003:1234\n\
             source server_id:  2\n\
             commit time:       2025-11-26T10:13:20Z\n\
             written at:        2025-11-26T10:13:21Z\n\
             events published:  17\n"
        );
        assert_eq!(
            render_show(&checkpoint(), ReportFormat::Json),
            "{\"position\":\"0-1-42,1-3-7@mariadb-bin.000003:1234\",\"gtid\":\"0-1-42,1-3-7\",\
             \"binlog\":\"mariadb-bin.000003:1234\",\"source_server_id\":2,\
             \"commit_time\":\"2025-11-26T10:13:20Z\",\"written_at\":\"2025-11-26T10:13:21Z\",\
             \"events_published\":17}\n"
        );
    }

    #[test]
    fn list_is_pinned_as_text_and_json() {
        let mut older = checkpoint();
        older.commit_time = None;
        older.position = "0-1-40".parse().unwrap();
        let entries = vec![(9, checkpoint()), (8, older)];
        assert_eq!(
            render_history(&entries, ReportFormat::Text),
            "  entry  written at            commit time               events  position\n     \
             #9  2025-11-26T10:13:21Z  2025-11-26T10:13:20Z          17  0-1-42,1-3-7@mariadb-bin.000003:1234\n     \
             #8  2025-11-26T10:13:21Z  -                             17  0-1-40\n"
        );
        let json = render_history(&entries, ReportFormat::Json);
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["entry"], 9);
        assert_eq!(lines[1]["commit_time"], "-");
        assert_eq!(lines[1]["position"], "0-1-40");
    }
}
