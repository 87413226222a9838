//! markdown: renders the Markdown request body to an HTML page (CommonMark, with tables
//! and strikethrough), served as `text/html`.

use std::io::Read;

use pulldown_cmark::{Options, Parser, html};

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
    html::push_html(&mut body, Parser::new_ext(&source, options));
    print!(
        "Content-Type: text/html; charset=utf-8\n\n\
         <!doctype html>\n<html><head><meta charset=\"utf-8\"><title>rendered</title></head>\n\
         <body>\n{body}</body></html>\n"
    );
}
