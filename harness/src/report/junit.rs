//! JUnit XML of a comparison, for CI systems that show test results: one testsuite, one testcase
//! per compared metric and per expectation of the new report, a failure for each regression.

use std::fmt::Write;

use super::compare::ReportComparison;
use super::gate::Verdict;
use super::verdict::Comparison;

impl ReportComparison {
    /// The comparison as a JUnit XML document (UTF-8): a `<testsuite>` named after the scenario,
    /// a `<testcase>` per metric (class `roadtest.compare`) and per expectation of the new report
    /// (class `roadtest.expectations`), a `<failure>` for each failed metric (type `regression`,
    /// `missing` or `scenario-changed`) and failed expectation, the targets, the source of the
    /// tolerances and an allowed target mismatch as properties, and the text table in
    /// `<system-out>`.
    pub fn to_junit(&self) -> String {
        let cases = self.junit_cases();
        let failures = cases.iter().filter(|case| case.failure.is_some()).count();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        // Writing into a String cannot fail.
        let _ = writeln!(
            xml,
            "<testsuite name=\"roadtest.compare.{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
            escape(&self.scenario),
            cases.len()
        );
        self.write_properties(&mut xml);
        for case in &cases {
            case.write(&mut xml);
        }
        let _ = writeln!(
            xml,
            "  <system-out>{}</system-out>\n</testsuite>",
            escape(&self.to_text())
        );
        xml
    }

    fn junit_cases(&self) -> Vec<Case> {
        let mut cases = Vec::new();
        for row in &self.rows {
            let kind = match row.verdict {
                Verdict::Missing => "missing",
                Verdict::ScenarioChanged => "scenario-changed",
                _ => "regression",
            };
            cases.push(Case {
                class: "roadtest.compare",
                name: row.label(),
                failure: row.verdict.fails().then(|| (kind, row.explanation())),
            });
        }
        for expectation in &self.expectations {
            let sign = match expectation.comparison {
                Comparison::AtMost => "<=",
                Comparison::AtLeast => ">=",
            };
            let failure = (!expectation.passed).then(|| {
                let message = format!(
                    "expectation {}: measured {} but must be {sign} {}",
                    expectation.name, expectation.value, expectation.threshold
                );
                ("expectation", message)
            });
            cases.push(Case {
                class: "roadtest.expectations",
                name: expectation.name.clone(),
                failure,
            });
        }
        cases
    }

    fn write_properties(&self, xml: &mut String) {
        let mut properties = vec![
            ("new", self.new_label.clone()),
            ("baseline", self.baseline_label.clone()),
            ("new_target", self.new_target.clone()),
            ("baseline_target", self.baseline_target.clone()),
            ("tolerances_from", self.settings_source.clone()),
            ("seed", self.seed.to_string()),
            ("replay_command", self.replay_command.clone()),
        ];
        if self.new_target != self.baseline_target {
            properties.push((
                "target_mismatch_allowed",
                format!(
                    "new run on {}, baseline on {} (--allow-target-mismatch)",
                    self.new_target, self.baseline_target
                ),
            ));
        }
        let _ = writeln!(xml, "  <properties>");
        for (name, value) in properties {
            let _ = writeln!(
                xml,
                "    <property name=\"{name}\" value=\"{}\"/>",
                escape(&value)
            );
        }
        let _ = writeln!(xml, "  </properties>");
    }
}

/// One `<testcase>`: its class, name, and failure type and message when it failed.
struct Case {
    class: &'static str,
    name: String,
    failure: Option<(&'static str, String)>,
}

impl Case {
    fn write(&self, xml: &mut String) {
        let _ = write!(
            xml,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            self.class,
            escape(&self.name)
        );
        match &self.failure {
            None => xml.push_str("/>\n"),
            Some((kind, message)) => {
                let _ = writeln!(
                    xml,
                    ">\n    <failure type=\"{kind}\" message=\"{}\">{}</failure>\n  </testcase>",
                    escape(message),
                    escape(message)
                );
            }
        }
    }
}

/// Text as XML character data or an attribute value: the five special characters escaped, and
/// characters XML 1.0 does not allow (control characters other than tab, newline and carriage
/// return) replaced by U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            '\t' | '\n' | '\r' => escaped.push(character),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                escaped.push('\u{FFFD}');
            }
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::super::compare::compare;
    use super::super::compare::tests::steady_report;
    use super::*;
    use crate::gate_settings::GateSettings;

    /// A minimal XML well-formedness check: every tag opens and closes in order, attributes are
    /// quoted, and no bare `<` or `&` appears in text. Returns the element names in document order.
    fn well_formed_elements(xml: &str) -> Vec<String> {
        let body = xml
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .expect("XML declaration first");
        let mut open: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find('<') {
            check_text(&rest[..start]);
            let end = rest[start..].find('>').expect("tag closes") + start;
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name), "closing {name}");
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let name = tag.split_whitespace().next().expect("tag name").to_string();
                check_attributes(&tag[name.len()..]);
                seen.push(name.clone());
                if !self_closing {
                    open.push(name);
                }
            }
            rest = &rest[end + 1..];
        }
        check_text(rest);
        assert!(open.is_empty(), "unclosed: {open:?}");
        seen
    }

    fn check_text(text: &str) {
        for (index, _) in text.match_indices('&') {
            let entity = &text[index..text[index..].find(';').unwrap() + index + 1];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].contains(&entity),
                "bad entity {entity}"
            );
        }
    }

    fn check_attributes(attributes: &str) {
        let mut rest = attributes.trim();
        while !rest.is_empty() {
            let equals = rest.find("=\"").expect("attribute=\"value\"");
            let close = rest[equals + 2..].find('"').expect("closing quote") + equals + 2;
            check_text(&rest[equals + 2..close]);
            rest = rest[close + 1..].trim_start();
        }
    }

    #[test]
    fn junit_is_well_formed_with_a_case_per_metric_and_expectation() {
        let baseline = steady_report();
        let mut worse = baseline.clone();
        worse.verify.lost = 2;
        worse.expectations[0].passed = false;
        worse.expectations[0].value = 2.0;
        worse.replay_command = "roadtest run <odd> & \"quoted\" 'path'\u{1}".to_string();
        let comparison = compare(&worse, &baseline, GateSettings::default());
        let xml = comparison.to_junit();
        let elements = well_formed_elements(&xml);
        assert_eq!(elements[0], "testsuite");
        assert_eq!(
            elements.iter().filter(|e| *e == "testsuite").count(),
            1,
            "one testsuite"
        );
        let cases = elements.iter().filter(|e| *e == "testcase").count();
        assert_eq!(cases, comparison.rows.len() + comparison.expectations.len());
        assert_eq!(elements.iter().filter(|e| *e == "failure").count(), 2);
        assert!(
            xml.contains(&format!("tests=\"{cases}\" failures=\"2\"")),
            "{xml}"
        );
        assert!(xml.contains(
            "<testcase classname=\"roadtest.compare\" name=\"lost (events)\" time=\"0\">"
        ));
        assert!(
            xml.contains(
                "message=\"lost (events): 0 -&gt; 2, tolerance &lt;= baseline: regression\""
            ),
            "{xml}"
        );
        assert!(xml.contains("name=\"lost_max\""), "{xml}");
        assert!(xml.contains("expectation lost_max: measured 2 but must be &lt;= 0"));
        assert!(
            xml.contains(
                "roadtest run &lt;odd&gt; &amp; &quot;quoted&quot; &#39;path&#39;\u{FFFD}"
            )
        );
    }

    #[test]
    fn junit_names_an_allowed_target_mismatch_and_missing_metrics() {
        let baseline = steady_report();
        let mut sim = baseline.clone();
        sim.target.name = "sim".to_string();
        sim.memory.peak_rss_mb.clear();
        sim.scenario.hash = "0123456789abcdef".to_string();
        let xml = compare(&sim, &baseline, GateSettings::default()).to_junit();
        well_formed_elements(&xml);
        assert!(
            xml.contains(
                "<property name=\"target_mismatch_allowed\" value=\"new run on sim, baseline on local (--allow-target-mismatch)\"/>"
            ),
            "{xml}"
        );
        assert!(xml.contains("<property name=\"new_target\" value=\"sim\"/>"));
        assert!(xml.contains("<failure type=\"missing\" message=\"peak RSS broker (MB): "));
        assert!(xml.contains("missing in new run"), "{xml}");
        assert!(xml.contains("<failure type=\"scenario-changed\""), "{xml}");
        assert!(xml.contains("TARGET MISMATCH allowed"), "system-out: {xml}");
        let same = compare(&baseline, &baseline, GateSettings::default()).to_junit();
        assert!(!same.contains("target_mismatch_allowed"), "{same}");
    }

    #[test]
    fn escape_handles_specials_and_control_characters() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(escape("tab\tline\n\u{7}"), "tab\tline\n\u{FFFD}");
        assert_eq!(escape("ünïcödé"), "ünïcödé");
    }
}
