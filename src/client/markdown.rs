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

/// The renderer's property, shared by its proptests and the fuzz target
/// `markdown` (`fuzz/`): whatever the model writes, the HTML holds nothing a
/// browser would run.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod properties {
    use html5gum::{Token, Tokenizer};

    use super::render;

    /// Every tag the renderer emits (pulldown-cmark's, ours for code blocks
    /// and links): `script`, `iframe`, `object`, `embed`, `style`, `img`,
    /// `svg`, `form`… are not among them.
    const TAGS: &[&str] = &[
        "a",
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "code",
        "ol",
        "ul",
        "li",
        "em",
        "strong",
        "del",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "hr",
        "br",
        "input",
        "div",
        "span",
        "button",
    ];
    const FORBIDDEN_TAGS: &[&str] = &["script", "iframe", "object", "embed", "style"];
    const ATTRIBUTES: &[&str] = &[
        "href",
        "title",
        "target",
        "rel",
        "class",
        "type",
        "disabled",
        "checked",
        "aria-label",
        "style",
        "start",
    ];
    /// Attributes a browser loads or follows as a URL.
    const URL_ATTRIBUTES: &[&str] = &[
        "href",
        "src",
        "action",
        "formaction",
        "xlink:href",
        "data",
        "poster",
        "background",
        "srcset",
        "cite",
        "codebase",
        "ping",
    ];
    /// Parse errors that only say a character in the text is unusual.
    const HARMLESS_ERRORS: &[&str] = &[
        "control-character-in-input-stream",
        "noncharacter-in-input-stream",
        "surrogate-in-input-stream",
        "unexpected-null-character",
    ];

    /// A URL as a browser reads its scheme: entities are already decoded by
    /// the tokenizer; tabs and newlines anywhere and C0 controls or spaces
    /// around it are dropped; the scheme is case-insensitive.
    fn normalised_url(value: &str) -> String {
        value
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect::<String>()
            .trim_matches(|c: char| c <= ' ')
            .to_ascii_lowercase()
    }

    /// Tokenises `html` as a browser would and fails on anything executable:
    /// a tag or attribute the renderer does not write (`script`, `iframe`,
    /// `object`, `on*`…), a URL other than `http(s)`/`mailto` (so no
    /// `javascript:`), a comment or doctype.
    pub fn check_safe(input: &str, html: &str) -> Result<(), String> {
        for token in Tokenizer::new(html) {
            let Ok(token) = token;
            match token {
                Token::StartTag(tag) => {
                    let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                    fail_unless!(
                        !FORBIDDEN_TAGS.contains(&name.as_str()) && TAGS.contains(&name.as_str()),
                        "<{name}> from {input:?}: {html}"
                    );
                    for (attr, value) in &tag.attributes {
                        let attr = String::from_utf8_lossy(attr).to_ascii_lowercase();
                        let value = String::from_utf8_lossy(value);
                        check_attribute(&attr, &value)
                            .map_err(|why| format!("{why} from {input:?}: {html}"))?;
                    }
                }
                Token::EndTag(_) | Token::String(_) => {}
                Token::Comment(_) | Token::Doctype(_) => {
                    return Err(format!("markup declaration from {input:?}: {html}"))
                }
                Token::Error(error) => fail_unless!(
                    HARMLESS_ERRORS.contains(&error.as_str()),
                    "{} from {input:?}: {html}",
                    error.as_str()
                ),
            }
        }
        Ok(())
    }

    /// One attribute (name in lower case, entities decoded).
    fn check_attribute(attr: &str, value: &str) -> Result<(), String> {
        fail_unless!(
            !attr.starts_with("on") && ATTRIBUTES.contains(&attr),
            "attribute {attr}"
        );
        if attr == "style" {
            fail_unless!(
                [
                    "text-align: left",
                    "text-align: center",
                    "text-align: right"
                ]
                .contains(&value),
                "style {value:?}"
            );
        }
        if URL_ATTRIBUTES.contains(&attr) {
            let url = normalised_url(value);
            for scheme in ["javascript:", "vbscript:", "data:"] {
                fail_unless!(!url.starts_with(scheme), "{attr}={url}");
            }
            // What the renderer deliberately keeps.
            fail_unless!(
                ["http://", "https://", "mailto:"]
                    .iter()
                    .any(|s| url.starts_with(s)),
                "{attr}={url}"
            );
        }
        Ok(())
    }

    /// Renders `input` and checks the HTML ([`check_safe`]).
    pub fn renders_inert(input: &str) -> Result<(), String> {
        check_safe(input, &render(input))
    }
}

/// Property tests (`PROPTEST_CASES` cases each, 256 by default): whatever
/// the model writes, the HTML holds nothing a browser would run.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::properties::renders_inert;

    /// Pieces of hostile and ordinary markdown: raw HTML, event handlers,
    /// script URLs (plain, mixed case, entity-encoded, split by controls)
    /// in links, images, autolinks and reference definitions, and the
    /// markdown syntax around them.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(vec![
                "<script>", "</script>", "<script src=x>", "<iframe src=x>", "<iframe",
                "<object data=x>", "<object", "<embed src=x>", "<style>", "</style>",
                "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>", "<a href=\"javascript:x\">",
                "</a>", "<div onclick=\"x()\">", "<!--", "-->", "<![CDATA[", "<!DOCTYPE html>",
                "<?php", "<textarea>", "<title>", "<noscript>", "<xmp>", "<plaintext>", "onerror=",
                "onload=", " on", "javascript:alert(1)", "JaVaScRiPt:", "java\tscript:",
                "java\nscript:", " \u{1}javascript:", "&#106;avascript:", "&#x6A;avascript:",
                "&#0000106;", "javascript&colon;", "&NewLine;", "vbscript:msgbox", "data:text/html,",
                "data:image/svg+xml,", "%6A", "http://", "https://a.example/", "mailto:a@b", "[", "]",
                "(", ")", "![", "](", "[x](", "![y](", "[r]", "[r]: ", "<", ">", "<http://x>",
                "<javascript:alert(1)>", "<mailto:a@b>", "\"", "'", "`", "```", "~~~", "```html\n",
                "\n", "\n\n", "    ", " ", "\t", "&", "&lt;", "&amp;", "&gt;", "&quot;", "\\", "**",
                "*", "_", "~~", "|", "| a | b |\n|---|:-:|\n", "---", "- ", "1. ", "> ", "# ",
                "- [ ] ", "- [x] ", "\"onmouseover=\"alert(1)", "\u{0}", "\u{feff}", "é", "💬",
            ])
            .prop_map(str::to_owned),
            1 => "(?s).{0,8}",
        ]
    }

    proptest! {
        #[test]
        fn prop_any_text_renders_to_inert_html(input in "(?s).{0,200}") {
            renders_inert(&input).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn prop_hostile_markdown_renders_to_inert_html(
            parts in prop::collection::vec(fragment(), 0..40),
        ) {
            let input = parts.concat();
            renders_inert(&input).map_err(TestCaseError::fail)?;
        }
    }
}
