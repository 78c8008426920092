//! `ls` and `inspect` for secrets and configs: docker's table (`ID NAME [DRIVER] CREATED
//! UPDATED`, full IDs, sorted by name), its `--format json` rows, the inspect array (indented, or
//! compact with `--format json`) and docker's `--pretty` text (a config's shows its data).

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Utc};

use super::{Kind, Object};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::filters::Filters;
use crate::format::{Table, go_time_pretty, inspect_array, json_row, natural_cmp, since_nanos};
use crate::node::{ListFormat, LsArgs, list_format};
use crate::units::human_duration;

pub async fn ls(client: &Client, kind: Kind, args: LsArgs) -> Result<()> {
    let format = list_format(args.format.as_deref())?;
    let filters = Filters::parse(&args.filter)?;
    let objects: Vec<Object> = client.get(kind.path(), &filters.query()).await?;
    print!(
        "{}",
        render_list(kind, objects, args.quiet, format, Utc::now())
    );
    Ok(())
}

/// docker's "2 hours ago" (go-units' text, capitalised as docker leaves it).
fn ago(ts: Option<&str>, now: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(since_nanos(ts, now)))
}

fn driver(o: &Object) -> String {
    o.spec
        .driver
        .as_ref()
        .map(|d| d.name.clone())
        .unwrap_or_default()
}

/// The table, `-q` IDs (full, as docker's `{{.ID}}` is here) or JSON rows, sorted by name.
pub fn render_list(
    kind: Kind,
    mut objects: Vec<Object>,
    quiet: bool,
    format: ListFormat,
    now: DateTime<Utc>,
) -> String {
    objects.sort_by(|a, b| natural_cmp(a.name(), b.name()));
    if quiet {
        return objects.iter().map(|o| format!("{}\n", o.id)).collect();
    }
    if format == ListFormat::Json {
        return objects
            .iter()
            .map(|o| {
                let labels: Vec<String> = o
                    .spec
                    .labels
                    .iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let mut fields = vec![
                    ("CreatedAt", ago(o.created_at.as_deref(), now).into()),
                    ("ID", o.id.clone().into()),
                    ("Labels", labels.join(",").into()),
                    ("Name", o.name().into()),
                    ("UpdatedAt", ago(o.updated_at.as_deref(), now).into()),
                ];
                if kind == Kind::Secret {
                    fields.push(("Driver", driver(o).into()));
                }
                format!("{}\n", json_row(&fields))
            })
            .collect();
    }
    let header: &[&str] = match kind {
        Kind::Secret => &["ID", "NAME", "DRIVER", "CREATED", "UPDATED"],
        Kind::Config => &["ID", "NAME", "CREATED", "UPDATED"],
    };
    let mut table = Table::new(header);
    for o in &objects {
        let mut row = vec![o.id.clone(), o.name().to_string()];
        if kind == Kind::Secret {
            row.push(driver(o));
        }
        row.push(ago(o.created_at.as_deref(), now));
        row.push(ago(o.updated_at.as_deref(), now));
        table.row(row);
    }
    table.render()
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// Format output: "json" (one line) or empty for the indented array
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

pub async fn inspect(client: &Client, kind: Kind, args: InspectArgs) -> Result<()> {
    let compact = match args.format.as_deref() {
        None | Some("") => false,
        Some(_) if args.pretty => {
            return Err(CliError::Usage(
                "--format is incompatible with human friendly format".into(),
            ));
        }
        Some("json") => true,
        Some(other) => {
            return Err(CliError::invalid_flag(
                "format",
                other,
                "only \"json\" is supported",
            ));
        }
    };
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        match client.get_raw(&kind.object_path(name), &[]).await {
            Ok(raw) => docs.push(raw),
            Err(e) if args.pretty => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    if args.pretty {
        for raw in &docs {
            let object: Object = crate::client::decode(kind.path(), raw)?;
            print!("{}", render_pretty(kind, &object));
        }
    } else if compact {
        println!("{}", compact_array(&docs));
    } else {
        println!("{}", inspect_array(&docs));
    }
    super::all_ok(errors)
}

/// docker's `inspect --format json`: the objects as sent, in one array on one line.
pub fn compact_array(docs: &[bytes::Bytes]) -> String {
    let parts: Vec<String> = docs
        .iter()
        .map(|d| String::from_utf8_lossy(d).trim().to_string())
        .collect();
    format!("[{}]", parts.join(","))
}

fn labels_text(labels: Option<&BTreeMap<String, String>>) -> String {
    let mut o = String::new();
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        return o;
    };
    o += "Labels:\n";
    for (k, v) in labels {
        if v.is_empty() {
            o += &format!(" - {k}\n");
        } else {
            o += &format!(" - {k}={v}\n");
        }
    }
    o
}

/// docker's `--pretty` templates (spaces for secrets, tabs for configs, as docker has them).
pub fn render_pretty(kind: Kind, o: &Object) -> String {
    let created = go_time_pretty(o.created_at.as_deref().unwrap_or(""));
    let updated = go_time_pretty(o.updated_at.as_deref().unwrap_or(""));
    let labels = labels_text(o.spec.labels.as_ref());
    match kind {
        Kind::Secret => format!(
            "ID:              {}\nName:              {}\n{labels}Driver:            {}\nCreated at:        {created}\nUpdated at:        {updated}\n",
            o.id,
            o.name(),
            driver(o),
        ),
        Kind::Config => {
            let data = o
                .spec
                .data
                .as_deref()
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
                .map(|d| String::from_utf8_lossy(&d).into_owned())
                .unwrap_or_default();
            format!(
                "ID:\t\t\t{}\nName:\t\t\t{}\n{labels}Created at:            \t{created}\nUpdated at:            \t{updated}\nData:\n{data}\n",
                o.id,
                o.name(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_time;

    const SECRETS: &str = r#"[
        {"ID":"y6vn0x3k2ov3bq0zxa8w4kc8t","Version":{"Index":12},"CreatedAt":"2026-11-24T10:00:00Z","UpdatedAt":"2026-11-24T11:59:00Z","Spec":{"Name":"web.key","Labels":{"env":"prod"}}},
        {"ID":"0k1sq2ezxlkl3q7y3kz6v7qz1","Version":{"Index":10},"CreatedAt":"2026-11-24T11:59:55Z","UpdatedAt":"2026-11-24T11:59:55Z","Spec":{"Name":"db.pass","Labels":null,"Driver":{"Name":"vault"}}}
    ]"#;

    fn now() -> DateTime<Utc> {
        parse_time("2026-11-24T12:00:00Z").expect("valid")
    }

    fn objects() -> Vec<Object> {
        serde_json::from_str(SECRETS).expect("valid")
    }

    #[test]
    fn secret_table_has_docker_columns() {
        let got = render_list(Kind::Secret, objects(), false, ListFormat::Table, now());
        let expected = "\
ID                          NAME      DRIVER    CREATED         UPDATED
0k1sq2ezxlkl3q7y3kz6v7qz1   db.pass   vault     5 seconds ago   5 seconds ago
y6vn0x3k2ov3bq0zxa8w4kc8t   web.key             2 hours ago     About a minute ago
";
        assert_eq!(got, expected);
        let quiet = render_list(Kind::Secret, objects(), true, ListFormat::Table, now());
        assert_eq!(
            quiet,
            "0k1sq2ezxlkl3q7y3kz6v7qz1\ny6vn0x3k2ov3bq0zxa8w4kc8t\n"
        );
    }

    #[test]
    fn config_table_and_json_rows() {
        let got = render_list(Kind::Config, objects(), false, ListFormat::Table, now());
        assert!(
            got.starts_with(
                "ID                          NAME      CREATED         UPDATED\n0k1sq2ezxlkl3q7y3kz6v7qz1   db.pass   5 seconds ago   5 seconds ago\n"
            ),
            "{got}"
        );
        let json = render_list(Kind::Secret, objects(), false, ListFormat::Json, now());
        assert_eq!(
            json.lines().nth(1),
            Some(
                r#"{"CreatedAt":"2 hours ago","Driver":"","ID":"y6vn0x3k2ov3bq0zxa8w4kc8t","Labels":"env=prod","Name":"web.key","UpdatedAt":"About a minute ago"}"#
            )
        );
        let json = render_list(Kind::Config, objects(), false, ListFormat::Json, now());
        assert!(!json.contains("Driver"), "{json}");
    }

    #[test]
    fn pretty_secret_matches_docker_template() {
        let mut o = objects().remove(0);
        o.created_at = Some("2026-11-24T10:00:00.5Z".into());
        let expected = "ID:              y6vn0x3k2ov3bq0zxa8w4kc8t\nName:              web.key\nLabels:\n - env=prod\nDriver:            \nCreated at:        2026-11-24 10:00:00.5 +0000 utc\nUpdated at:        2026-11-24 11:59:00 +0000 utc\n";
        assert_eq!(render_pretty(Kind::Secret, &o), expected);
    }

    #[test]
    fn pretty_config_shows_decoded_data() {
        let o: Object = serde_json::from_str(
            r#"{"ID":"c1","CreatedAt":"2026-11-24T10:00:00Z","UpdatedAt":"2026-11-24T10:00:00Z","Spec":{"Name":"app.conf","Labels":{"a":""},"Data":"bGlzdGVuIDgwCg=="}}"#,
        )
        .expect("valid");
        let expected = "ID:\t\t\tc1\nName:\t\t\tapp.conf\nLabels:\n - a\nCreated at:            \t2026-11-24 10:00:00 +0000 utc\nUpdated at:            \t2026-11-24 10:00:00 +0000 utc\nData:\nlisten 80\n\n";
        assert_eq!(render_pretty(Kind::Config, &o), expected);
    }

    #[test]
    fn compact_inspect_is_one_line() {
        let docs = [
            bytes::Bytes::from_static(b"{\"ID\":\"a\"}\n"),
            bytes::Bytes::from_static(b"{\"ID\":\"b\"}"),
        ];
        assert_eq!(compact_array(&docs), r#"[{"ID":"a"},{"ID":"b"}]"#);
        assert_eq!(compact_array(&[]), "[]");
    }
}
