//! Model output → safe HTML.
//!
//! Markdown (lists, tables, code blocks, emphasis, links) becomes HTML; raw
//! HTML in the model's text is never passed through: it is shown as text.
//! Links keep only `http`, `https` and `mailto` targets and open in a new tab
//! with `rel="noopener noreferrer nofollow"`; images become links. Compiled on
//! both sides, so the server-rendered and the hydrated page agree.

use pulldown_cmark::{html, CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

use super::highlight::{self, html_escape};

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

/// Renders markdown to sanitised HTML.
pub fn render(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut open_links: Vec<bool> = Vec::new();
    // Text of the fenced/indented code block being read, with its language.
    let mut code: Option<(String, String)> = None;
    let mut events: Vec<Event<'_>> = Vec::new();
    for event in Parser::new_ext(markdown, options) {
        if let Some((lang, text)) = &mut code {
            match event {
                Event::Text(t) | Event::Html(t) | Event::InlineHtml(t) | Event::Code(t) => {
                    text.push_str(&t)
                }
                Event::End(TagEnd::CodeBlock) => {
                    events.push(Event::Html(CowStr::from(code_block(lang, text))));
                    code = None;
                }
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => language(&info),
                    CodeBlockKind::Indented => String::new(),
                };
                code = Some((lang, String::new()));
            }
            // Raw HTML is shown, never interpreted.
            Event::Html(raw) | Event::InlineHtml(raw) => events.push(Event::Text(raw)),
            // Images become links: no request leaves the page for model-chosen URLs.
            Event::Start(Tag::Link {
                dest_url, title, ..
            })
            | Event::Start(Tag::Image {
                dest_url, title, ..
            }) => {
                let safe = safe_url(&dest_url);
                open_links.push(safe);
                if safe {
                    let title = if title.is_empty() {
                        String::new()
                    } else {
                        format!(" title=\"{}\"", escape(&title))
                    };
                    events.push(Event::InlineHtml(CowStr::from(format!(
                        "<a href=\"{}\"{title} target=\"_blank\" rel=\"noopener noreferrer nofollow\">",
                        escape(&dest_url)
                    ))));
                }
            }
            Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
                if open_links.pop().unwrap_or(false) {
                    events.push(Event::InlineHtml(CowStr::from("</a>")));
                }
            }
            other => events.push(other),
        }
    }
    // A block still open at the end (a reply being streamed) shows what it has.
    if let Some((lang, text)) = &code {
        events.push(Event::Html(CowStr::from(code_block(lang, text))));
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    out
}

/// The language of a fence's info string, reduced to characters safe in a
/// class name (`rust,ignore` → `rust`).
fn language(info: &str) -> String {
    info.split([' ', ',', '{'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '#' | '-' | '_'))
        .take(24)
        .collect()
}

/// A code block: a header with its language and a copy button, then the
/// highlighted (or escaped) code.
fn code_block(lang: &str, code: &str) -> String {
    let body = highlight::highlight(lang, code).unwrap_or_else(|| escape(code));
    let class = if lang.is_empty() {
        String::new()
    } else {
        format!(" class=\"language-{lang}\"")
    };
    format!(
        "<div class=\"code-block\"><div class=\"code-head\"><span class=\"code-lang\">{}</span>\
         <button type=\"button\" class=\"copy-code\" aria-label=\"Copy code\">Copy</button></div>\
         <pre><code{class}>{body}</code></pre></div>",
        if lang.is_empty() { "text" } else { lang }
    )
}

/// `text` escaped by [`html_escape`], as a new string.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    html_escape(&mut out, text.chars());
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn raw_html_is_shown_as_text() {
        let html =
            render("Careful: <img src=x onerror=\"alert(1)\"> and <script>alert(2)</script>");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        let block = render("<div onclick=\"x()\">hi</div>\n\nafter");
        assert!(!block.contains("<div"), "{block}");
    }

    #[test]
    fn markdown_structures_render() {
        let html = render("**bold**\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<li>one</li>"));
        assert!(html.contains("<table>"));
        assert!(html.contains("<code class=\"language-rust\">"));
    }

    #[test]
    fn code_blocks_are_highlighted_escaped_and_copyable() {
        let html = render("```rust,ignore\nlet s = \"<script>\"; // hi\n```\n");
        assert!(html.contains("class=\"copy-code\""), "{html}");
        assert!(html.contains("<code class=\"language-rust\">"), "{html}");
        assert!(html.contains("hl-kw"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        let evil = render("```\"><img src=x onerror=alert(1)>\nx\n```\n");
        assert!(!evil.contains("<img"), "{evil}");
        let open = render("```python\nprint(1)");
        assert!(
            open.contains("print"),
            "an unclosed block still shows: {open}"
        );
    }

    #[test]
    fn links_are_safe_and_unsafe_schemes_dropped() {
        let html = render("[site](https://example.com \"t\") and [bad](javascript:alert(1)) ![img](https://x/y.png)");
        assert!(html.contains("href=\"https://example.com\""), "{html}");
        assert!(
            html.contains("rel=\"noopener noreferrer nofollow\""),
            "{html}"
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("bad"), "the link text stays: {html}");
        assert!(!html.contains("<img"), "images become links: {html}");
    }

    #[test]
    fn attribute_injection_through_urls_is_escaped() {
        let html = render("[x](https://a.example/\"onmouseover=\"alert(1))");
        assert!(!html.contains("\" onmouseover"), "{html}");
    }
}
