//! markdown: renders the Markdown request body to an HTML page (CommonMark, with tables
//! and strikethrough), served as `text/html`.
//!
//! Every function of a gateway shares one origin, so the page it renders must not run
//! anything a visitor posted: raw HTML in the Markdown is shown as text, not passed
//! through, and a link or image whose address has a scheme other than http, https or
//! mailto (`javascript:`, `data:`, ...) loses it.

use std::io::Read;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

/// The URL schemes a link or image may keep; anything else becomes `#`.
const SAFE_SCHEMES: &[&str] = &["http", "https", "mailto"];

fn main() {
    let mut source = String::new();
    if std::io::stdin().read_to_string(&mut source).is_err() {
        print!("Status: 400 Bad Request\nContent-Type: text/plain\n\nthe body is not UTF-8\n");
        return;
    }
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut body = String::new();
    html::push_html(&mut body, Parser::new_ext(&source, options).map(sanitize));
    print!(
        "Content-Type: text/html; charset=utf-8\n\n\
         <!doctype html>\n<html><head><meta charset=\"utf-8\"><title>rendered</title></head>\n\
         <body>\n{body}</body></html>\n"
    );
}

/// Raw HTML becomes text (escaped when written); unsafe link and image addresses go.
fn sanitize(event: Event<'_>) -> Event<'_> {
    match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    }
}

/// `url` when it is relative or has a safe scheme, `#` otherwise.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme)
        .filter(|s| !s.contains(['/', '?', '#']));
    match scheme {
        Some(s) if !SAFE_SCHEMES.iter().any(|safe| s.trim().eq_ignore_ascii_case(safe)) => {
            CowStr::Borrowed("#")
        }
        _ => url,
    }
}
