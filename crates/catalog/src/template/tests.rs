//! Construct-by-construct tests of the template engine.
use super::*;

fn params(kv: &[(&str, &str)]) -> Value {
    let p: BTreeMap<String, Value> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), Value::str(*v)))
        .collect();
    let mut root = BTreeMap::new();
    root.insert("Parameters".to_string(), Value::Map(p));
    let mut r = BTreeMap::new();
    r.insert("Name".to_string(), Value::str("csi-secret"));
    r.insert("Namespace".to_string(), Value::str("kb-system"));
    root.insert("CSIDriverSecretRef".to_string(), Value::Map(r));
    Value::Map(root)
}

fn render(src: &str, kv: &[(&str, &str)]) -> String {
    Template::parse(src).unwrap().render(&params(kv)).unwrap()
}

#[test]
fn text_fields_index_and_missing_keys() {
    assert_eq!(
        render(
            "a={{ .Parameters.a }} b={{ index .Parameters \"b\" }}",
            &[("a", "1"), ("b", "2")]
        ),
        "a=1 b=2"
    );
    assert_eq!(render("[{{ .Parameters.x }}]", &[]), "[<no value>]");
    assert_eq!(render("[{{ index .Parameters \"x\" }}]", &[]), "[]");
    assert_eq!(
        render("{{ .CSIDriverSecretRef.Namespace }}", &[]),
        "kb-system"
    );
    assert_eq!(render("{{/* a comment */}}x", &[]), "x");
}

#[test]
fn trim_markers() {
    assert_eq!(render("a  \n  {{- \"b\" -}}  \n  c", &[]), "abc");
    assert_eq!(render("a {{ \"b\" }} c", &[]), "a b c");
    assert_eq!(
        render(
            "x\n    {{- $r := index .Parameters \"region\" }}\ny",
            &[("region", "r")]
        ),
        "x\ny"
    );
}

#[test]
fn variables_if_else_if_else_and_scope() {
    let t = r#"{{- $region := index .Parameters "region" }}
{{- $endpoint := index .Parameters "endpoint" }}
{{- if not $endpoint }}
  {{- if hasPrefix "cn-" $region }}
{{- $endpoint = (printf "https://s3.%s.amazonaws.com.cn" $region) }}
  {{- else }}
{{- $endpoint = (printf "https://s3.%s.amazonaws.com" $region) }}
  {{- end }}
{{- end }}
endpoint: {{ $endpoint }}"#;
    assert_eq!(
        render(t, &[("region", "cn-north-1")]),
        "\nendpoint: https://s3.cn-north-1.amazonaws.com.cn"
    );
    assert_eq!(
        render(t, &[("region", "us-west-2")]),
        "\nendpoint: https://s3.us-west-2.amazonaws.com"
    );
    assert_eq!(
        render(t, &[("region", "x"), ("endpoint", "http://e")]),
        "\nendpoint: http://e"
    );
    let t = "{{ if eq .Parameters.a \"1\" }}one{{ else if eq .Parameters.a \"2\" }}two{{ else }}many{{ end }}";
    assert_eq!(render(t, &[("a", "1")]), "one");
    assert_eq!(render(t, &[("a", "2")]), "two");
    assert_eq!(render(t, &[("a", "3")]), "many");
    // A variable declared inside a block is gone after it.
    let err = Template::parse("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}")
        .unwrap()
        .render(&params(&[]))
        .unwrap_err();
    assert!(err.to_string().contains("undefined variable: $x"), "{err}");
}

#[test]
fn pipelines_and_functions() {
    assert_eq!(
        render("{{ .Parameters.tls | default false }}", &[]),
        "false"
    );
    assert_eq!(
        render("{{ .Parameters.tls | default false }}", &[("tls", "true")]),
        "true"
    );
    assert_eq!(
        render(
            "{{ if ne .Parameters.port \"0\" }}{{ .Parameters.port }}{{ else }}21{{ end }}",
            &[("port", "0")]
        ),
        "21"
    );
    assert_eq!(
        render("{{ \"a,b,c\" | splitList \",\" | join \"-\" }}", &[]),
        "a-b-c"
    );
    assert_eq!(
        render(
            "{{ upper \"ab\" }}{{ lower \"CD\" }}{{ trim \"  e \" }}",
            &[]
        ),
        "ABcde"
    );
    assert_eq!(
        render(
            "{{ quote \"a\\\"b\" }} {{ replace \"-\" \"_\" \"a-b-c\" }}",
            &[]
        ),
        "\"a\\\"b\" a_b_c"
    );
    assert_eq!(
        render(
            "{{ contains \"ell\" \"hello\" }} {{ hasSuffix \"lo\" \"hello\" }}",
            &[]
        ),
        "true true"
    );
    assert_eq!(
        render("{{ toJson (splitList \",\" \"x,y\") }}", &[]),
        "[\"x\",\"y\"]"
    );
    assert_eq!(
        render(
            "{{ len \"abc\" }} {{ and 1 0 2 }} {{ or 0 \"\" 3 }} {{ not 0 }}",
            &[]
        ),
        "3 0 3 true"
    );
    assert_eq!(render("{{ eq 1 2 3 1 }}", &[]), "true");
}

#[test]
fn printf_like_go() {
    assert_eq!(
        render("{{ printf \"--memory-limit %s --x %s %s\" .Parameters.m .Parameters.y .Parameters.missing }}", &[("m", "512"), ("y", "20480")]),
        "--memory-limit 512 --x 20480 %!s(<nil>)"
    );
    assert_eq!(
        render("{{ printf \"%d%% %q %t %v\" 5 \"s\" true 1.5 }}", &[]),
        "5% \"s\" true 1.5"
    );
    assert_eq!(
        render("{{ printf \"%s %s\" \"a\" }}", &[]),
        "a %!s(MISSING)"
    );
    assert_eq!(
        render("{{ printf \"%s\" \"a\" \"b\" }}", &[]),
        "a%!(EXTRA string=b)"
    );
}

/// Found by cargo-fuzz: each `quote` doubles the backslashes, so 60 of them would need
/// 2^60 bytes. Growth is capped and reported instead.
#[test]
fn runaway_growth_is_refused() {
    let data = Value::Map(BTreeMap::new());
    let chain = format!("{{{{ \"\\\"\" {} }}}}", "| quote ".repeat(60));
    let started = std::time::Instant::now();
    let e = Template::parse(&chain).unwrap().render(&data).unwrap_err();
    assert!(
        e.to_string()
            .contains("templates must render small configs"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // $a: 10^6 bytes, just under the cap; each line below would multiply it.
    let big = r#"{{ $a := "0000000000" }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}{{ $a = replace "0" "0000000000" $a }}"#;
    for tail in [
        r#"{{ replace "" $a $a }}"#,
        r#"{{ join $a (splitList "0" $a) }}"#,
        r#"{{ printf "%s%s%s%s%s" $a $a $a $a $a }}"#,
        r#"{{ $a }}{{ $a }}{{ $a }}{{ $a }}{{ $a }}"#,
    ] {
        let src = format!("{big}{tail}");
        let t = Template::parse(&src).unwrap();
        let e = t.render(&data).unwrap_err();
        assert!(e.to_string().contains("small configs"), "{tail}: {e}");
    }
}

#[test]
fn errors_are_clear() {
    let e = Template::parse("{{ env \"HOME\" }}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused") && e.contains("env"), "{e}");
    let e = Template::parse("{{ now }}").unwrap_err().to_string();
    assert!(e.contains("refused"), "{e}");
    let e = Template::parse("{{ frobnicate 1 }}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("function \"frobnicate\" not defined"), "{e}");
    let e = Template::parse("a\n{{ if true }}x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("without {{end}}"), "{e}");
    assert!(Template::parse("{{ end }}").is_err());
    assert!(Template::parse("{{ (printf \"x\" }}").is_err());
    assert!(Template::parse("{{ \"unterminated }}").is_err());
    assert!(Template::parse("{{ range .Parameters }}{{ end }}")
        .unwrap_err()
        .to_string()
        .contains("not supported"));
    let e = Template::parse("{{ eq .Parameters.missing \"0\" }}")
        .unwrap()
        .render(&params(&[]))
        .unwrap_err();
    assert!(
        e.to_string().contains("incompatible types for comparison"),
        "{e}"
    );
}
