//! Test stand-in for kubectl's `-o jsonpath=…`: the common subset — literal text, `{.a.b}`,
//! `{.items[*].x}`, `{.items[0].x}`, `{.conditions[?(@.type=="Ready")].status}`. It does not
//! support `range`/`end`, recursive descent (`..`), slices or unions; they are errors.

use serde_json::Value;

/// Renders `template` against `root`.
pub fn render(template: &str, root: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| "unclosed action".to_string())?;
        let expr = rest[open + 1..close].trim();
        let values = eval(expr, root)?;
        let texts: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&texts.join(" "));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval<'a>(expr: &str, root: &'a Value) -> Result<Vec<&'a Value>, String> {
    if expr.starts_with("range") || expr == "end" || expr.contains("..") {
        return Err(format!("unsupported action {expr:?} (k8r stand-in)"));
    }
    let path = expr.strip_prefix('$').unwrap_or(expr);
    let path = path
        .strip_prefix('.')
        .ok_or_else(|| format!("unrecognized identifier {expr}"))?;
    let mut cur = vec![root];
    if path.is_empty() {
        return Ok(cur);
    }
    for seg in split_segments(path) {
        let (key, selectors) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !key.is_empty() {
            cur = cur.into_iter().filter_map(|v| v.get(key)).collect();
        }
        let mut sel = selectors;
        while let Some(body) = sel.strip_prefix('[') {
            let end = matching_bracket(body).ok_or_else(|| format!("unterminated [ in {seg}"))?;
            let inner = &body[..end];
            cur = select(cur, inner)?;
            sel = &body[end + 1..];
        }
    }
    Ok(cur)
}

fn split_segments(path: &str) -> Vec<&str> {
    // Split on '.' outside brackets.
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out
}

fn matching_bracket(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn select<'a>(cur: Vec<&'a Value>, inner: &str) -> Result<Vec<&'a Value>, String> {
    let items = cur.into_iter().filter_map(Value::as_array).flatten();
    if inner == "*" {
        return Ok(items.collect());
    }
    if let Ok(i) = inner.parse::<usize>() {
        let arrays: Vec<&'a Value> = items.collect();
        return Ok(arrays.get(i).copied().into_iter().collect());
    }
    let filter = inner
        .strip_prefix("?(@.")
        .and_then(|f| f.strip_suffix(')'))
        .ok_or_else(|| format!("unsupported selector [{inner}] (k8r stand-in)"))?;
    let (field, want) = filter
        .split_once("==")
        .ok_or_else(|| format!("unsupported filter {filter} (k8r stand-in)"))?;
    let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
    let field = field.trim();
    Ok(items
        .filter(|v| match v.get(field) {
            Some(Value::String(s)) => s == want,
            Some(other) => {
                let text = other.to_string();
                text == want
            }
            None => false,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_common_subset() {
        let v = json!({"items": [
            {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}, "spec": {"unschedulable": true}},
            {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}, "spec": {}}
        ]});
        assert_eq!(
            render("{.items[*].metadata.name}", &v).expect("names"),
            "a b"
        );
        assert_eq!(
            render("first={.items[0].metadata.name}\n", &v).expect("first"),
            "first=a\n"
        );
        assert_eq!(
            render(
                "{.items[*].status.conditions[?(@.type==\"Ready\")].status}",
                &v
            )
            .expect("ready"),
            "True False"
        );
        assert_eq!(
            render("{.items[0].spec.unschedulable}", &v).expect("bool"),
            "true"
        );
        assert_eq!(
            render("{.items[1].spec.unschedulable}", &v).expect("missing"),
            ""
        );
        assert!(render("{range .items[*]}{end}", &v).is_err());
        assert!(render("{.items", &v).is_err());
    }
}
