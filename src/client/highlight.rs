//! Tiny, dependency-free syntax highlighting for fenced code blocks.
//!
//! One generic scanner walks the code char by char, driven by a per-language
//! rule table (comment markers, quote chars, keywords, literals, flags).
//! Languages: Rust, JavaScript, TypeScript, Python, Go, C, C++, Java, C#,
//! Kotlin, Swift, shell, JSON, TOML, YAML, SQL, HTML/XML and CSS.
//! Every character of the input is HTML-escaped (`&`, `<`, `>`, `"`, `'`);
//! the only markup in the output is `<span class="hl-…">` / `</span>`, never
//! nested, so the result is safe to insert as HTML. Runs in linear time and
//! never panics: unterminated strings and comments simply run to the end.
//! [`html_escape`] here is the client's one HTML escape, shared with the
//! markdown renderer.

/// How one language is tokenised: a row of [`LANGUAGES`].
struct Language {
    /// Fence names (lower case) that select it.
    aliases: &'static [&'static str],
    /// Line comment prefix.
    line_comment: Option<&'static str>,
    /// Block comment delimiters.
    block_comment: Option<(&'static str, &'static str)>,
    /// Characters that open (and close) a string literal.
    quotes: &'static str,
    /// Literal words (`true`, `null`, …), space separated.
    literals: &'static str,
    /// Keywords, space separated.
    keywords: &'static str,
    /// Scanner switches.
    flags: Flags,
}

/// Switches of the generic scanner, combined with [`Flags::and`].
#[derive(Clone, Copy)]
struct Flags(u8);

impl Flags {
    const NONE: Flags = Flags(0);
    /// Capitalised words are types.
    const TYPES: Flags = Flags(1);
    /// Words match case-insensitively.
    const NO_CASE: Flags = Flags(1 << 1);
    /// Shell-like: `#` starts a comment only after whitespace, and `'` after
    /// a letter is an apostrophe.
    const SHELL: Flags = Flags(1 << 2);
    /// Rust char literals (lifetimes and labels stay plain).
    const CHARS: Flags = Flags(1 << 3);
    /// Words may contain `-`.
    const DASHED: Flags = Flags(1 << 4);
    /// HTML/XML tags.
    const MARKUP: Flags = Flags(1 << 5);
    /// Triple-quoted strings.
    const TRIPLE: Flags = Flags(1 << 6);

    const fn and(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    fn has(self, flag: Flags) -> bool {
        self.0 & flag.0 == flag.0
    }
}

impl Language {
    /// The language named by the first word of a code block's info string.
    fn from_info(info: &str) -> Option<&'static Language> {
        let name = info
            .split(|c: char| c.is_whitespace() || c == ',' || c == '{')
            .find(|s| !s.is_empty())?
            .to_ascii_lowercase();
        LANGUAGES
            .iter()
            .find(|l| l.aliases.contains(&name.as_str()))
    }
}

/// The C family's block comment, shared by most rows.
const SLASH_STAR: Option<(&str, &str)> = Some(("/*", "*/"));

/// A row of [`LANGUAGES`] with `//` and `/* */` comments (the common case).
const fn c_like(
    aliases: &'static [&'static str],
    quotes: &'static str,
    flags: Flags,
    literals: &'static str,
    keywords: &'static str,
) -> Language {
    Language {
        aliases,
        line_comment: Some("//"),
        block_comment: SLASH_STAR,
        quotes,
        literals,
        keywords,
        flags,
    }
}

const JS_LITERALS: &str = "true false null undefined NaN Infinity";

/// Every language the highlighter knows. Laid out by hand: one row per
/// language, keywords last.
#[rustfmt::skip]
const LANGUAGES: &[Language] = &[
    c_like(&["rust", "rs"], "\"", Flags::TYPES.and(Flags::CHARS), "true false None",
        "as async await break const continue crate dyn else enum extern fn for if impl in let \
         loop match mod move mut pub ref return self Self static struct super trait type unsafe \
         use where while"),
    c_like(&["javascript", "js", "jsx", "mjs"], "\"'`", Flags::NONE, JS_LITERALS,
        "async await break case catch class const continue debugger default delete do else \
         export extends finally for from function if import in instanceof let new of return \
         static super switch this throw try typeof var void while yield"),
    c_like(&["typescript", "ts", "tsx"], "\"'`", Flags::TYPES, JS_LITERALS,
        "async await break case catch class const continue debugger default delete do else \
         export extends finally for from function if import in instanceof let new of return \
         static super switch this throw try typeof var void while yield abstract as declare \
         enum implements interface keyof namespace private protected public readonly type"),
    Language { aliases: &["python", "py", "python3"], line_comment: Some("#"),
        block_comment: None, quotes: "\"'", flags: Flags::TRIPLE, literals: "True False None",
        keywords: "and as assert async await break class continue def del elif else except \
                   finally for from global if import in is lambda nonlocal not or pass raise \
                   return try while with yield match case self" },
    c_like(&["go", "golang"], "\"'`", Flags::TYPES, "true false nil iota",
        "break case chan const continue default defer else fallthrough for func go goto if \
         import interface map package range return select struct switch type var"),
    c_like(&["c"], "\"'", Flags::NONE, "true false NULL",
        "auto break case char const continue default do double else enum extern float for goto \
         if inline int long register return short signed sizeof static struct switch typedef \
         union unsigned void volatile while include define ifdef ifndef endif"),
    c_like(&["cpp", "c++", "cc", "cxx", "h", "hpp"], "\"'", Flags::NONE, "true false NULL nullptr",
        "auto break case char const continue default do double else enum extern float for goto \
         if inline int long register return short signed sizeof static struct switch typedef \
         union unsigned void volatile while include define ifdef ifndef endif bool catch class \
         constexpr delete explicit friend namespace new noexcept operator override private \
         protected public template this throw try typename using virtual"),
    c_like(&["java"], "\"'", Flags::TYPES, "true false null",
        "abstract boolean break byte case catch char class const continue default do double \
         else enum extends final finally float for if implements import instanceof int \
         interface long native new package private protected public record return short static \
         super switch synchronized this throw throws try var void volatile while"),
    c_like(&["csharp", "cs", "c#"], "\"'", Flags::TYPES, "true false null",
        "abstract as async await base bool break byte case catch char class const continue \
         decimal default delegate do double else enum event explicit extern finally fixed float \
         for foreach get if implicit in int interface internal is lock long namespace new object \
         operator out override params private protected public readonly ref return sealed set \
         short sizeof static string struct switch this throw try typeof uint ulong using var \
         virtual void volatile while"),
    c_like(&["kotlin", "kt"], "\"'", Flags::TYPES.and(Flags::TRIPLE), "true false null",
        "as break by class companion continue data do else enum for fun if import in interface \
         internal is object open override package private protected public return sealed super \
         suspend this throw try typealias val var when while"),
    c_like(&["swift"], "\"'", Flags::TYPES.and(Flags::TRIPLE), "true false nil",
        "as associatedtype break case catch class continue default defer do else enum extension \
         fallthrough fileprivate for func guard if import in init inout internal is let mutating \
         open override private protocol public repeat return self Self static struct subscript \
         switch throw throws try var where while"),
    Language { aliases: &["bash", "sh", "shell", "zsh", "console"], line_comment: Some("#"),
        block_comment: None, quotes: "\"'`", flags: Flags::SHELL.and(Flags::DASHED),
        literals: "true false",
        keywords: "if then else elif fi for while until do done case esac in function return \
                   local export select break continue" },
    Language { aliases: &["json"], line_comment: None, block_comment: None, quotes: "\"",
        flags: Flags::NONE, literals: "true false null", keywords: "" },
    Language { aliases: &["toml"], line_comment: Some("#"), block_comment: None, quotes: "\"'",
        flags: Flags::TRIPLE.and(Flags::DASHED), literals: "true false", keywords: "" },
    Language { aliases: &["yaml", "yml"], line_comment: Some("#"), block_comment: None,
        quotes: "\"'", flags: Flags::SHELL.and(Flags::DASHED),
        literals: "true false null yes no", keywords: "" },
    Language { aliases: &["sql"], line_comment: Some("--"), block_comment: SLASH_STAR,
        quotes: "\"'", flags: Flags::NO_CASE, literals: "true false null",
        keywords: "select from where insert into values update set delete create table drop \
                   alter add index primary key foreign references join inner left right outer \
                   on as and or not in is like between group by order having limit offset union \
                   all distinct case when then else end exists view default unique returning \
                   with" },
    Language { aliases: &["html", "htm", "xml", "svg"], line_comment: None,
        block_comment: Some(("<!--", "-->")), quotes: "\"'", flags: Flags::MARKUP, literals: "",
        keywords: "" },
    Language { aliases: &["css"], line_comment: None, block_comment: SLASH_STAR, quotes: "\"'",
        flags: Flags::DASHED, literals: "inherit initial unset none auto",
        keywords: "important media import keyframes supports font-face" },
];

/// Highlights `code` written in `lang` (the info string of a fenced code block, e.g. "rust",
/// "js", "py"). Returns HTML where every piece of the input is HTML-escaped (&, <, >, ", ')
/// and tokens are wrapped in `<span class="hl-…">`; `None` when the language is not known
/// (the caller escapes the code itself).
pub fn highlight(lang: &str, code: &str) -> Option<String> {
    let lang = Language::from_info(lang)?;
    let cs: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len() * 2);
    let (mut i, mut in_tag) = (0, false);
    while i < cs.len() {
        let (class, end) = token(lang, &cs, i, &mut in_tag);
        let end = end.clamp(i + 1, cs.len());
        emit(&mut out, class, &cs[i..end]);
        i = end;
    }
    Some(out)
}

/// Appends `text` to `out` with `&`, `<`, `>`, `"` and `'` escaped, so it is
/// safe as element content and inside a quoted attribute value. The client's
/// one HTML escape: the markdown renderer uses it too.
pub fn html_escape(out: &mut String, text: impl IntoIterator<Item = char>) {
    for c in text {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// Appends `text` escaped, wrapped in a span when `class` is given.
fn emit(out: &mut String, class: Option<&str>, text: &[char]) {
    if let Some(class) = class {
        out.push_str("<span class=\"");
        out.push_str(class);
        out.push_str("\">");
    }
    html_escape(out, text.iter().copied());
    if class.is_some() {
        out.push_str("</span>");
    }
}

/// Whether `pat` occurs in `cs` at char index `i`.
fn at(cs: &[char], i: usize, pat: &str) -> bool {
    pat.chars()
        .enumerate()
        .all(|(k, p)| cs.get(i + k) == Some(&p))
}

/// Index just past the first `pat` at or after `from`, or the end of input.
fn find_end(cs: &[char], from: usize, pat: &str) -> usize {
    (from..cs.len())
        .find(|&j| at(cs, j, pat))
        .map_or(cs.len(), |j| j + pat.chars().count())
}

/// Scans the token starting at `i`: its class and the index just past it.
fn token(l: &Language, cs: &[char], i: usize, in_tag: &mut bool) -> (Option<&'static str>, usize) {
    let c = cs[i];
    let prev = i.checked_sub(1).and_then(|p| cs.get(p));
    let shell = l.flags.has(Flags::SHELL);
    if let Some((open, close)) = l.block_comment.filter(|(open, _)| at(cs, i, open)) {
        let end = find_end(cs, i + open.chars().count(), close);
        return (Some("hl-com"), end);
    }
    let after_space = prev.is_none_or(|p| p.is_whitespace());
    if l.line_comment.is_some_and(|p| at(cs, i, p)) && (!shell || c != '#' || after_space) {
        let end = (i..cs.len()).find(|&j| cs[j] == '\n').unwrap_or(cs.len());
        return (Some("hl-com"), end);
    }
    if l.flags.has(Flags::MARKUP) {
        return markup(cs, i, in_tag);
    }
    let apostrophe = shell && c == '\'' && prev.is_some_and(|p| p.is_alphanumeric());
    if l.quotes.contains(c) && !apostrophe {
        return (
            Some("hl-str"),
            string_end(cs, i, l.flags.has(Flags::TRIPLE)),
        );
    }
    if c == '\'' && l.flags.has(Flags::CHARS) {
        // Not a char literal: a lifetime or label, kept plain with its name.
        return char_literal(cs, i)
            .map_or((None, word_end(cs, i + 1, false)), |e| (Some("hl-str"), e));
    }
    if c.is_ascii_digit() {
        return (Some("hl-num"), number_end(cs, i));
    }
    if c.is_alphabetic() || c == '_' {
        let end = word_end(cs, i, l.flags.has(Flags::DASHED));
        return (word_class(l, &cs[i..end], cs.get(end) == Some(&'(')), end);
    }
    (None, i + 1)
}

/// End of the identifier characters (`-` too when `dash`) from `from`.
fn word_end(cs: &[char], from: usize, dash: bool) -> usize {
    (from..cs.len())
        .find(|&j| !(cs[j].is_alphanumeric() || cs[j] == '_' || (dash && cs[j] == '-')))
        .unwrap_or(cs.len())
}

/// End of the string opened at `i`, honouring backslash escapes.
fn string_end(cs: &[char], i: usize, triple: bool) -> usize {
    let q = cs[i];
    let qqq: String = [q; 3].iter().collect();
    let long = triple && at(cs, i, &qqq);
    let mut j = i + if long { 3 } else { 1 };
    while j < cs.len() {
        match cs[j] {
            '\\' => j += 2,
            _ if long && at(cs, j, &qqq) => return j + 3,
            c if !long && c == q => return j + 1,
            _ => j += 1,
        }
    }
    cs.len()
}

/// End of a Rust char literal at `i` (`'x'`, `'\n'`, `'\u{1F600}'`), or
/// `None` when the quote is a lifetime or label.
fn char_literal(cs: &[char], i: usize) -> Option<usize> {
    match cs.get(i + 1)? {
        '\\' => (i + 3..cs.len().min(i + 12))
            .take_while(|&j| cs[j] != '\n')
            .find(|&j| cs[j] == '\'')
            .map(|j| j + 1),
        '\n' | '\'' => None,
        _ => (cs.get(i + 2) == Some(&'\'')).then_some(i + 3),
    }
}

/// End of the number at `i`: digits, letters (hex, suffixes), `_`, a `.`
/// followed by a digit, and a sign right after an exponent `e`.
fn number_end(cs: &[char], i: usize) -> usize {
    let mut j = i + 1;
    while let Some(&c) = cs.get(j) {
        let next_digit = cs.get(j + 1).is_some_and(|d| d.is_ascii_digit());
        let sign = matches!(c, '+' | '-') && matches!(cs[j - 1], 'e' | 'E') && next_digit;
        if !(c.is_ascii_alphanumeric() || c == '_' || sign || (c == '.' && next_digit)) {
            break;
        }
        j += 1;
    }
    j
}

/// Class of an identifier: keyword, literal, function call or type.
fn word_class(l: &Language, word: &[char], call: bool) -> Option<&'static str> {
    let ci = l.flags.has(Flags::NO_CASE);
    let fold = |c: &char| if ci { c.to_ascii_lowercase() } else { *c };
    let matches = |k: &str| k.len() == word.len() && k.chars().eq(word.iter().map(fold));
    let upper = word.first().is_some_and(|c| c.is_uppercase());
    if l.keywords.split(' ').any(matches) {
        Some("hl-kw")
    } else if l.literals.split(' ').any(matches) {
        Some("hl-lit")
    } else if call {
        Some("hl-fn")
    } else if l.flags.has(Flags::TYPES)
        && upper
        && (word.len() == 1 || word.iter().any(|c| c.is_lowercase()))
    {
        Some("hl-ty")
    } else {
        None
    }
}

/// HTML/XML outside comments: `<name` and `>` are keywords, quoted attribute
/// values inside a tag are strings, everything else is plain text.
fn markup(cs: &[char], i: usize, in_tag: &mut bool) -> (Option<&'static str>, usize) {
    let next = cs.get(i + 1).copied();
    match cs[i] {
        '<' if !*in_tag && next.is_some_and(|n| n.is_alphabetic() || "/!?".contains(n)) => {
            *in_tag = true;
            let end = (i + 2..cs.len())
                .find(|&j| !(cs[j].is_alphanumeric() || "-_:.".contains(cs[j])))
                .unwrap_or(cs.len());
            (Some("hl-kw"), end)
        }
        '>' if *in_tag => {
            *in_tag = false;
            (Some("hl-kw"), i + 1)
        }
        '/' if *in_tag && next == Some('>') => {
            *in_tag = false;
            (Some("hl-kw"), i + 2)
        }
        '"' | '\'' if *in_tag => (Some("hl-str"), string_end(cs, i, false)),
        _ => (None, i + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::{emit, highlight, LANGUAGES};

    /// Removes our span tags (asserting no other raw markup) and unescapes.
    fn plain(html: &str) -> String {
        let (mut rest, mut out) = (html, String::new());
        while let Some(c) = rest.chars().next() {
            if let Some(r) = rest.strip_prefix("</span>") {
                rest = r;
            } else if let Some(r) = rest.strip_prefix("<span class=\"hl-") {
                let end = r.find("\">").expect("span tag closes");
                assert!(r[..end].chars().all(|c| c.is_ascii_lowercase()), "{html}");
                rest = &r[end + 2..];
            } else {
                assert!(!"<>\"'".contains(c), "raw {c:?} in {html:?}");
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        let entities = [
            ("&lt;", "<"),
            ("&gt;", ">"),
            ("&quot;", "\""),
            ("&#39;", "'"),
        ];
        let out = entities.iter().fold(out, |s, (e, c)| s.replace(e, c));
        out.replace("&amp;", "&")
    }

    /// Highlights `code`, asserting it round-trips through [`plain`].
    fn check(lang: &str, code: &str) -> String {
        let html = highlight(lang, code).expect("known language");
        assert_eq!(plain(&html), code, "round trip for {lang}");
        html
    }

    /// Each spec is a language, a space, then code with every expected token
    /// marked as `«class:text»`; the unmarked code must highlight to exactly that.
    fn cases(specs: &[&str]) {
        for spec in specs {
            let (lang, marked) = spec.split_once(' ').expect("language");
            let (mut code, mut want) = (String::new(), String::new());
            for (k, part) in marked.split(['«', '»']).enumerate() {
                let (class, text) = match part.split_once(':') {
                    Some((class, text)) if k % 2 == 1 => (Some(format!("hl-{class}")), text),
                    _ => (None, part),
                };
                code.push_str(text);
                emit(
                    &mut want,
                    class.as_deref(),
                    &text.chars().collect::<Vec<_>>(),
                );
            }
            assert_eq!(check(lang, &code), want, "{spec}");
        }
    }

    #[test]
    fn escapes_markup_in_code_and_strings() {
        let html = check("js", "a<b && '<script>' // <b>");
        let want = "a&lt;b &amp;&amp; <span class=\"hl-str\">&#39;&lt;script&gt;&#39;</span> \
            <span class=\"hl-com\">// &lt;b&gt;</span>";
        assert_eq!(html, want);
        let html = check("html", "<script>a < b</script>");
        let want = "<span class=\"hl-kw\">&lt;script</span><span class=\"hl-kw\">&gt;</span>a \
            &lt; b<span class=\"hl-kw\">&lt;/script</span><span class=\"hl-kw\">&gt;</span>";
        assert_eq!(html, want);
    }

    #[test]
    fn rust_tokens() {
        cases(&[
            "rust «kw:fn» «fn:main»() { «kw:let» s = «str:\"hi\"»; «com:// end»\n«com:/* b */»}",
            "rust «num:0x1F» + «num:2.5e-3» + «num:1_000u32»; «num:0»..«num:10»; MAX.«num:0»",
            "rs «kw:let» v: «ty:Vec»<«ty:T»> = «lit:None»; «kw:impl» «kw:Self» «kw:for» «ty:A»",
        ]);
    }

    #[test]
    fn rust_lifetimes_are_not_char_literals() {
        cases(&[
            "rust «kw:fn» f<'a, 'b>(x: &'a str) -> char { «str:'x'» }",
            "rust «str:'\\n'» «str:'\\''» «str:'\\u{1F980}'» «str:'ü'» 'outer: «kw:loop» {}",
            "rust «ty:Cow»<'static, str> b«str:'x'»",
        ]);
    }

    #[test]
    fn python_triple_quotes_and_hash_comments() {
        cases(&[
            "py «kw:def» «fn:f»():\n  «str:\"\"\"Doc 'q' \"x\"\n\"\"\"»  «com:# note»\n",
            "py  «kw:return» Foo «kw:if» «fn:len»(x) «kw:else» f«str:'{y}'»",
            "Python x = «str:'''a ' '' \\''' b'''» «lit:True» «lit:None» «com:# \"#»",
        ]);
    }

    #[test]
    fn language_lookup() {
        assert_eq!(highlight("brainfuck", "+++"), None);
        assert_eq!(highlight("", "x"), None);
        for info in "RUST|rust,ignore| c++ |C#|yml|golang {.x}|console|Shell".split('|') {
            assert!(highlight(info, "x").is_some(), "{info}");
        }
        assert_eq!(highlight("json", "").as_deref(), Some(""));
    }

    #[test]
    fn unterminated_tokens_run_to_end() {
        cases(&[
            "rust x = «str:\"abc\ndef\\»",
            "c x «com:/* never closed\n y»",
            "py «str:'''open\n''»",
            "html «kw:<a» href=«str:'x>»",
            "rust x '\\u{«num:12345678» '\\",
        ]);
    }

    #[test]
    fn other_languages() {
        cases(&[
            "sql «kw:SELECT» * «kw:from» t «kw:WHERE» x «kw:IS» «lit:NULL» «com:-- c»",
            "sh «kw:if» x; «kw:then» echo $# don't «str:\"$x\"» «com:# real»",
            "go «kw:func» «fn:F»(x «ty:Foo») «ty:Bar» { «kw:return» «lit:nil» }",
            "css a { font-size: «num:10px»; «com:/* c */» }",
            "html «kw:<p» class=«str:\"x\"»«kw:>»a < b«kw:</p»«kw:>»«com:<!-- <i> -->»",
            "xml «kw:<?xml» v=«str:'1'»?«kw:>»«kw:<br» «kw:/>»",
            "js «kw:const» s = «str:`${x} <b>`»; «fn:alert»(«lit:null»); Foo",
            "json {«str:\"a\"»: [«num:1», «lit:true»]}",
            "yaml key: «str:'v'» «com:# c»\nurl: a#b it's",
            "cs «ty:Console».«fn:WriteLine»(«str:\"hi\"»)",
        ]);
    }

    #[test]
    fn round_trips_tricky_input() {
        let tricky =
            "héllo 世界 🦀|'|\"|\\|'\\|/*|*/|<!--|-->|`${x}`|0x1e+|1.2.3|a'b|<a b=\"x\">|'''\
            |\"\"\"|#|--|'🦀'|&amp;|\n|<|/>|'\\u{|é|1e|f(|Ü|//|\r\n\t| |";
        for language in LANGUAGES {
            let lang = language.aliases[0];
            for a in tricky.split('|') {
                for b in tricky.split('|') {
                    check(lang, &format!("{a}{b}"));
                    check(lang, &format!("{a} x{b}ü"));
                }
            }
        }
    }
}

/// The highlighter's property, shared by its proptests and the fuzz target
/// `highlight` (`fuzz/`): its output unescapes to its input.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod properties {
    use super::{highlight, LANGUAGES};

    /// Every fence name of every language.
    pub fn aliases() -> Vec<&'static str> {
        LANGUAGES
            .iter()
            .flat_map(|l| l.aliases.iter().copied())
            .collect()
    }

    /// Reads the highlighter's output back to text in one pass, failing on
    /// anything but `<span class="hl-…">`/`</span>` (balanced, not nested)
    /// and the five entities [`super::html_escape`] writes.
    pub fn unescape(html: &str) -> Result<String, String> {
        const ENTITIES: [(&str, char); 5] = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
        ];
        let (mut rest, mut out, mut open) = (html, String::new(), false);
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("<span class=\"hl-") {
                let end = after.find("\">").ok_or("unclosed span tag")?;
                let class = &after[..end];
                if open || class.is_empty() || !class.chars().all(|c| c.is_ascii_lowercase()) {
                    return Err(format!("span {class:?} (nested: {open})"));
                }
                (open, rest) = (true, &after[end + 2..]);
            } else if let Some(after) = rest.strip_prefix("</span>") {
                if !open {
                    return Err("</span> without a span".into());
                }
                (open, rest) = (false, after);
            } else if c == '&' {
                let (entity, ch) = ENTITIES
                    .iter()
                    .find(|(e, _)| rest.starts_with(e))
                    .ok_or_else(|| format!("bare & at {rest:?}"))?;
                out.push(*ch);
                rest = &rest[entity.len()..];
            } else if "<>\"'".contains(c) {
                return Err(format!("raw {c:?} at {rest:?}"));
            } else {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if open {
            return Err("span left open".into());
        }
        Ok(out)
    }

    /// Highlights `code` as the known language `lang` and reads it back.
    pub fn unescapes_to_itself(lang: &str, code: &str) -> Result<(), String> {
        let html = highlight(lang, code).ok_or_else(|| format!("{lang:?} is not known"))?;
        let back = unescape(&html).map_err(|why| format!("{why} in {html:?} from {code:?}"))?;
        fail_unless!(back == code, "{code:?} came back as {back:?} from {html:?}");
        Ok(())
    }
}

/// Property tests (`PROPTEST_CASES` cases each, 256 by default).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::{
        highlight,
        properties::{aliases, unescapes_to_itself},
    };

    /// Every alias of every language, as a fence would name it.
    fn alias() -> impl Strategy<Value = String> {
        (
            prop::sample::select(aliases()),
            any::<bool>(),
            prop::sample::select(vec!["", ",ignore", " {x}", " title=\"a\""]),
        )
            .prop_map(|(name, upper, tail)| {
                let name = if upper {
                    name.to_ascii_uppercase()
                } else {
                    name.to_owned()
                };
                format!("{name}{tail}")
            })
    }

    /// Code-like pieces: every language's comment and string openers,
    /// escapes, numbers, tags, words and non-ASCII text.
    fn code() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            3 => prop::sample::select(vec![
                "\"", "'", "`", "\"\"\"", "'''", "\\", "\\\"", "\\'", "/*", "*/", "//", "#", "--",
                "<!--", "-->", "<", ">", "</", "/>", "<?", "?>", "&", "&amp;", "&lt;", "${", "}",
                "r#\"", "\"#", "b'", "'a", "'\\u{1F980}'", "0x1F", "1e10", "1.2.3", "0b", "42px",
                "fn", "let", "SELECT", "null", "true", "None", "Foo", "f(", "a-b", "$x", "@media",
                " ", "\t", "\n", "\r\n", "é", "世界", "🦀", "\u{0}", "\u{feff}",
            ])
            .prop_map(str::to_owned),
            1 => "(?s).{0,6}",
        ];
        prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn prop_highlighted_code_unescapes_to_itself(lang in alias(), input in "(?s).{0,200}") {
            unescapes_to_itself(&lang, &input).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn prop_highlighted_code_like_text_unescapes_to_itself(lang in alias(), input in code()) {
            unescapes_to_itself(&lang, &input).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn prop_unknown_languages_are_left_to_the_caller(lang in "[a-z]{1,3}[0-9]", input in ".*") {
            prop_assert_eq!(highlight(&lang, &input), None);
        }
    }
}
