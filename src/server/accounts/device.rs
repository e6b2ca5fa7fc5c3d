//! A device's label from its `User-Agent`: "Firefox on Linux", shown in the
//! list of sessions. Approximate on purpose: it only helps a person tell
//! their devices apart, and is never used to decide anything.

/// Longest label kept.
const MAX_LABEL: usize = 60;

/// "Browser on System", or what is known of it.
pub fn label(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.trim().is_empty()) else {
        return "Unknown device".into();
    };
    // Order matters: Edge and Opera say Chrome, Chrome says Safari.
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| *name);
    let system = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| *name);
    let text = match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) => ua.chars().filter(|c| !c.is_control()).collect(),
    };
    text.chars().take(MAX_LABEL).collect()
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn common_agents_get_short_labels() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(label(Some(chrome)), "Chrome on Linux");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                      (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(label(Some(iphone)), "Safari on iPhone");
        assert_eq!(label(None), "Unknown device");
        assert_eq!(label(Some(&"x\u{7}".repeat(100))).chars().count(), 60);
    }
}
