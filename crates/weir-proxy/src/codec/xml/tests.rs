use super::*;
use serde_json::json;

const USER_XML: &str = "<user type=\"admin\"><name>Elliot</name><social><facebook>https://facebook.com</facebook><twitter>https://twitter.com</twitter><youtube>https://youtube.com</youtube></social></user>";

fn user() -> Value {
    json!({"user": {"-type": "admin", "name": "Elliot", "social": {
        "facebook": "https://facebook.com",
        "twitter": "https://twitter.com",
        "youtube": "https://youtube.com"}}})
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn parses_krakend_user_example() {
    assert_eq!(
        Value::Object(xml_to_map(USER_XML.as_bytes()).unwrap()),
        user()
    );
}

#[test]
fn parses_repeats_text_namespaces_and_entities() {
    let xml = r#"<?xml version="1.0"?>
        <!-- c --><!DOCTYPE r>
        <ns:r xmlns:ns="urn:x" ns:id="7">
          hello &amp; <![CDATA[<raw>]]> &#65;
          <i>1</i><e/><i>2</i><?pi x?>
          <a k="&lt;v&gt;"/>
          <i> 3 </i>
        </ns:r>"#;
    let got = Value::Object(xml_to_map(xml.as_bytes()).unwrap());
    let want = json!({"r": {
        "-ns": "urn:x", "-id": "7",
        "#text": "hello & <raw> A",
        "i": ["1", "2", "3"], "e": "", "a": {"-k": "<v>"}
    }});
    assert_eq!(got, want);
}

#[test]
fn rejects_bad_documents() {
    type Check = fn(&XmlError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |e| matches!(e, XmlError::NoRoot)),
        ("<!-- only -->", |e| matches!(e, XmlError::NoRoot)),
        ("<a><b></a>", |e| matches!(e, XmlError::Malformed(_))),
        ("<a>", |e| matches!(e, XmlError::Unclosed(_))),
        ("<a/><b/>", |e| matches!(e, XmlError::ContentOutsideRoot)),
        ("<a/>text", |e| matches!(e, XmlError::ContentOutsideRoot)),
        ("<a>&foo;</a>", |e| matches!(e, XmlError::UnknownEntity(_))),
        ("<a x=\"1\" x=\"2\"/>", |e| {
            matches!(e, XmlError::Malformed(_))
        }),
        (
            "<!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]><l>&b;</l>",
            |e| matches!(e, XmlError::EntityDeclaration),
        ),
        (
            "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><x>&xxe;</x>",
            |e| matches!(e, XmlError::EntityDeclaration),
        ),
    ];
    for (xml, check) in cases {
        let err = xml_to_map(xml.as_bytes()).expect_err(xml);
        assert!(check(&err), "{xml}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert!(xml_to_map(&[0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]).is_err());
}

#[test]
fn caps_nesting_depth() {
    let deep = |n: usize| "<a>".repeat(n) + &"</a>".repeat(n);
    assert!(xml_to_map(deep(MAX_DEPTH).as_bytes()).is_ok());
    let err = xml_to_map(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
    assert!(matches!(err, XmlError::TooDeep));
    let err = xml_to_map(("<a>".repeat(100_000)).as_bytes()).unwrap_err();
    assert!(matches!(err, XmlError::TooDeep));
}

#[test]
fn writes_krakend_examples() {
    assert_eq!(map_to_xml(&obj(user())), USER_XML);
    let data = obj(
        json!({"foo": 42, "headers": {"Accept-Encoding": ["gzip"], "User-Agent": ["X"]},
        "path": "/p/", "query": {}}),
    );
    assert_eq!(
        map_to_xml(&data),
        "<doc><foo>42</foo><headers><Accept-Encoding>gzip</Accept-Encoding><User-Agent>X</User-Agent></headers><path>/p/</path><query/></doc>"
    );
}

#[test]
fn writes_attributes_text_escapes_and_sanitised_names() {
    let data = obj(json!({"r": {
        "-id": 1, "-q": "a\"<&>\n", "#text": "x < y", "n": null, "e": "", "b": true,
        "l": [1, [2, 3], {"-k": "v"}], "empty": [], "-o": {"z": 1},
        "1st": "a", "bad key:x": "b", "": "c", "-a b": "1", "-a_b": "2", "ctl": "\u{1}\r"
    }}));
    let got = map_to_xml(&data);
    assert_eq!(
        got,
        "<r a_b=\"1\" id=\"1\" q=\"a&quot;&lt;&amp;&gt;&#xA;\">x &lt; y\
         <_>c</_><_-o><z>1</z></_-o><_1st>a</_1st><b>true</b><bad_key_x>b</bad_key_x>\
         <ctl>\u{FFFD}&#xD;</ctl><e/><l>1</l><l>2</l><l>3</l><l k=\"v\"/><n/></r>"
    );
    let back = xml_to_map(got.as_bytes()).unwrap();
    assert_eq!(back["r"]["-q"], json!("a\"<&>\n"));
    assert_eq!(back["r"]["ctl"], json!("\u{FFFD}"));
    assert_eq!(map_to_xml(&obj(json!({"a": "x"}))), "<doc><a>x</a></doc>");
    assert_eq!(map_to_xml(&Map::new()), "<doc/>");
}

#[test]
fn xml_round_trips_through_the_tree() {
    let tree = xml_to_map(USER_XML.as_bytes()).unwrap();
    assert_eq!(xml_to_map(map_to_xml(&tree).as_bytes()).unwrap(), tree);
}

#[test]
fn decodes_200k_attributes() {
    // Quadratic before: quick-xml's duplicate check held a worker for minutes here.
    let n = 200_000;
    let attrs: String = (0..n).map(|i| format!(" a{i}=\"v{i}\"")).collect();
    let doc = format!("<r{attrs}>text</r>");
    let tree = xml_to_map(doc.as_bytes()).unwrap();
    let r = tree["r"].as_object().unwrap();
    assert_eq!(r.len(), n + 1);
    assert_eq!(r["#text"], json!("text"));
    for i in [0, 1, n / 2, n - 1] {
        assert_eq!(r[&format!("-a{i}")], json!(format!("v{i}")));
    }
    // A duplicate far from the first occurrence is still found.
    let doc = format!("<r{attrs} a7=\"again\"/>");
    let err = xml_to_map(doc.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, XmlError::Malformed(m) if m.contains("a7")),
        "{err}"
    );
    // Prefixed names are distinct attributes that share a local name: the last one wins.
    let tree = xml_to_map(br#"<r xmlns:p="urn:p" p:id="1" id="2"/>"#).unwrap();
    assert_eq!(tree["r"]["-id"], json!("2"));
}

#[test]
fn writes_200k_attributes() {
    let n = 200_000;
    let mut fields = Map::new();
    for i in 0..n {
        fields.insert(format!("-a{i}"), json!(i));
    }
    let mut data = Map::new();
    data.insert("r".to_string(), Value::Object(fields));
    let xml = map_to_xml(&data);
    let back = xml_to_map(xml.as_bytes()).unwrap();
    let r = back["r"].as_object().unwrap();
    assert_eq!(r.len(), n);
    assert_eq!(r["-a199999"], json!("199999"));
}

#[test]
fn decodes_100k_repeated_children_in_order() {
    let n = 100_000;
    let items: String = (0..n).map(|i| format!("<i>{i}</i><e/>")).collect();
    let doc = format!("<r>{items}</r>");
    let tree = xml_to_map(doc.as_bytes()).unwrap();
    let items = tree["r"]["i"].as_array().unwrap();
    assert_eq!(items.len(), n);
    assert!(items
        .iter()
        .enumerate()
        .all(|(i, v)| v.as_str() == Some(&i.to_string())));
    assert_eq!(tree["r"]["e"].as_array().map(Vec::len), Some(n));
    let back = xml_to_map(map_to_xml(&tree).as_bytes()).unwrap();
    assert_eq!(back["r"]["i"], tree["r"]["i"]);
}

#[test]
fn decodes_a_document_as_deep_as_allowed() {
    // Every level has attributes, repeated children, text and entities; the `<s>`
    // children of the last level sit at the deepest level allowed.
    let levels = MAX_DEPTH - 1;
    let mut doc = String::new();
    for d in 0..levels {
        doc.push_str(&format!(
            "<l{d} n=\"{d}\" m=\"&lt;\"><s>a</s><s>b</s>t&amp;"
        ));
    }
    for d in (0..levels).rev() {
        doc.push_str(&format!("</l{d}>"));
    }
    let tree = xml_to_map(doc.as_bytes()).unwrap();
    let mut node = &tree["l0"];
    for d in 0..levels {
        assert_eq!(node["-n"], json!(d.to_string()));
        assert_eq!(node["-m"], json!("<"));
        assert_eq!(node["s"], json!(["a", "b"]));
        assert_eq!(node["#text"], json!("t&"));
        if d + 1 < levels {
            node = &node[format!("l{}", d + 1)];
        }
    }
    assert_eq!(xml_to_map(map_to_xml(&tree).as_bytes()).unwrap(), tree);
    // One level more is refused.
    let last = format!("<l{d} n=\"{d}\" m=\"&lt;\"><s>a</s>", d = levels - 1);
    let over = doc.replacen(&last, &last.replace("<s>a</s>", "<s><x/></s>"), 1);
    assert_ne!(over, doc);
    assert!(matches!(
        xml_to_map(over.as_bytes()),
        Err(XmlError::TooDeep)
    ));
}

#[test]
fn a_tree_over_its_budget_is_refused() {
    let doc = format!("<r>{}</r>", "<i a=\"\"/>".repeat(10_000));
    let err = xml_to_map_limited(doc.as_bytes(), 100_000).unwrap_err();
    assert!(
        matches!(err, XmlError::TooLarge { budget: 100_000 }),
        "{err}"
    );
    assert!(xml_to_map_limited(doc.as_bytes(), 100_000_000).is_ok());
    assert!(xml_to_map_limited(USER_XML.as_bytes(), 4096).is_ok());
}
