//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

#[allow(unused_imports)] // each test binary uses a part
pub use backuprepo_fixtures::{read_shared, shared_path};

/// A YAML text found in a markdown file and where it starts (1-based line).
#[derive(Debug)]
pub struct Snippet {
    pub line: usize,
    pub text: String,
}

/// YAML texts of a markdown document: the bodies of ```yaml fences, and the bodies of
/// heredocs (`<<EOF`, `<<-'EOF'`, ...) inside any other fence (e.g. `kubectl apply -f - <<EOF`).
/// Fence indentation is removed from every line.
pub fn yaml_snippets(markdown: &str) -> Vec<Snippet> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - trimmed.len();
        let lang = info.trim().to_ascii_lowercase();
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !lines[end].trim_start().starts_with("```") {
            end += 1;
        }
        let body: Vec<String> = lines[start..end]
            .iter()
            .map(|l| dedent(l, indent))
            .collect();
        if lang == "yaml" || lang == "yml" {
            out.push(Snippet {
                line: start + 1,
                text: body.join("\n"),
            });
        } else {
            let mut j = 0;
            while j < body.len() {
                if let Some(tag) = heredoc_tag(&body[j]) {
                    let from = j + 1;
                    let mut to = from;
                    while to < body.len() && body[to].trim() != tag {
                        to += 1;
                    }
                    out.push(Snippet {
                        line: start + from + 1,
                        text: body[from..to].join("\n"),
                    });
                    j = to + 1;
                } else {
                    j += 1;
                }
            }
        }
        i = end + 1;
    }
    out
}

fn dedent(line: &str, indent: usize) -> String {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    line[spaces.min(indent)..].to_owned()
}

fn heredoc_tag(line: &str) -> Option<String> {
    let pos = line.find("<<")?;
    let tag: String = line[pos + 2..]
        .trim_start_matches('-')
        .trim_start()
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!tag.is_empty()).then_some(tag)
}

/// Whether a YAML text declares a kind parse_documents handles.
pub fn declares_supported_kind(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        l == "kind: BackupRepo" || l == "kind: StorageProvider" || l == "kind: Secret"
    })
}
