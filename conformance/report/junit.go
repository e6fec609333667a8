package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML, as CI systems read it: one testsuite per run, one testcase per
// result. fail becomes <failure>, error <error>, skip <skipped>; warn and
// info pass, with what was observed in <system-out>.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(ms float64) string { return fmt.Sprintf("%.3f", ms/1000) }

// WriteJUnit writes rep as JUnit XML.
func WriteJUnit(w io.Writer, rep *Report) error {
	suite := junitSuite{
		Name:     fmt.Sprintf("synprobe %s %s", rep.Command, rep.Target.Address),
		Tests:    len(rep.Results),
		Failures: rep.Summary[Fail],
		Errors:   rep.Summary[Error],
		Skipped:  rep.Summary[Skip],
		Time:     seconds(rep.DurationMS),
	}
	if !rep.Started.IsZero() {
		suite.Timestamp = rep.Started.UTC().Format("2006-01-02T15:04:05")
	}
	for _, r := range rep.Results {
		c := junitCase{Name: r.Name, Classname: "synprobe." + rep.Command, Time: seconds(r.DurationMS)}
		detail := stepsText(r)
		switch r.Verdict {
		case Fail:
			c.Failure = &junitProblem{Message: r.Reason, Type: string(r.Cause), Text: detail}
		case Error:
			c.Error = &junitProblem{Message: r.Reason, Type: string(r.Cause), Text: detail}
		case Skip:
			c.Skipped = &junitProblem{Message: r.Reason, Type: string(r.Cause)}
		case Warn, Info:
			c.SystemOut = strings.ToUpper(string(r.Verdict)) + ": " + r.Reason + "\n" + detail
		}
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{
		Name: "synprobe", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// stepsText is the detail of a result for CI logs: every step that was not
// a plain pass, with its problems.
func stepsText(r Result) string {
	var b strings.Builder
	for _, s := range r.Steps {
		if s.Verdict == Pass && len(s.Problems) == 0 {
			continue
		}
		writeStep(&b, s)
	}
	return b.String()
}
