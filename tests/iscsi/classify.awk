# Classify iscsi-test-cu's console output (its default verbose mode) test by test:
# prints "FAMILY.SUITE.TEST RESULT" with RESULT one of passed, skipped, FAILED.
# A test is "skipped" when it printed a [SKIPPED] line between its "Test: NAME ..." and its
# result (the tool itself counts such a test as passed). FAMILY comes from -v family=NAME.
function close_test(result) {
    if (test != "") {
        if (result == "passed" && skipped) result = "skipped"
        printf "%s.%s.%s %s\n", family, suite, test, result
    }
    test = ""
    skipped = 0
}
function scan(text) {
    if (test == "") return
    if (index(text, "[SKIPPED]")) skipped = 1
    # The result word, not a "[FAILED] ..." message a test prints about an expected failure.
    if (text ~ /(^|\.\.\.)FAILED *$/) { close_test("FAILED"); return }
    if (text ~ /(^|[ .])passed *$/ || text ~ /^passed/ || text ~ /\.\.\.passed/) close_test("passed")
}
/^Suite: / { close_test("FAILED"); suite = substr($0, 8); sub(/ +$/, "", suite); next }
/^  Test: / {
    close_test("FAILED")
    rest = substr($0, 9)
    i = index(rest, " ...")
    test = substr(rest, 1, i - 1)
    skipped = 0
    scan(substr(rest, i + 4))
    next
}
/^Run Summary:/ { close_test("FAILED"); suite = ""; next }
{ scan($0) }
END { close_test("FAILED") }
