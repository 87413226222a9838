//! form: handles an HTML form. A GET shows the form; a POST of
//! `application/x-www-form-urlencoded` fields greets the `name` field, HTML-escaped.

use std::io::Read;

const FORM: &str = "<form method=\"post\"><label>Name <input name=\"name\"></label> \
                    <button>Send</button></form>";

fn main() {
    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();
    let content_type = std::env::var("CONTENT_TYPE").unwrap_or_default();
    if method != "POST" {
        return page(200, FORM);
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return page(415, "<p>Send the form as application/x-www-form-urlencoded.</p>");
    }
    let mut body = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut body);
    let name = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if name.trim().is_empty() {
        return page(422, &format!("<p>Please give a name.</p>{FORM}"));
    }
    page(200, &format!("<p>Hello, {}!</p>", escape(&name)));
}

fn page(status: u16, content: &str) {
    print!(
        "Status: {status}\nContent-Type: text/html; charset=utf-8\n\n\
         <!doctype html>\n<html><body>{content}</body></html>\n"
    );
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}
