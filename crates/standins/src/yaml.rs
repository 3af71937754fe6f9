//! Test stand-in plumbing: YAML in and out. Documents become JSON values (as kubectl and
//! kubeadm convert YAML to JSON before decoding); output keys are sorted like the Go tools'.
//! It does not keep comments, anchors or key order.

use serde::Deserialize;
use serde_json::Value;

/// Parses multi-document YAML; empty documents (a leading `---`, only comments) are skipped.
/// The error text names the 1-based document.
pub fn parse_docs(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| {
            format!(
                "error converting YAML to JSON: yaml: document {}: {e}",
                i + 1
            )
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// A value as YAML text (sorted keys, block style).
pub fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_else(|e| format!("# k8r stand-in: cannot render: {e}\n"))
}

/// The string at `path` (keys) in `v`.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

/// The value at `path` (keys) in `v`; `None` for missing or null.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_doc_skips_empty_and_reports_the_broken_document() {
        let docs =
            parse_docs("---\n# only a comment\n---\na: 1\n---\nb: [x, y]\n---\n").expect("docs");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"][1], "y");
        let e = parse_docs("a: 1\n---\nb: [unclosed\n").expect_err("broken");
        assert!(e.contains("document 2"), "{e}");
        let v: Value = serde_json::json!({"z": 1, "a": {"list": ["x"]}});
        assert_eq!(to_yaml(&v), "a:\n  list:\n  - x\nz: 1\n");
        assert_eq!(str_at(&v, &["a", "list"]), None);
        assert!(at(&v, &["a", "list"]).is_some());
    }
}
