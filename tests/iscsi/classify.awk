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
    # The result word, not a "[FAILED] ..." message a test prints about an expected failure.
    if (text ~ /(^|\.\.\.)FAILED *$/) { skipped_in(text); close_test("FAILED"); return }
    if (text ~ /(^|[ .])passed *$/) { skipped_in(text); close_test("passed"); return }
    # "passed" followed by what the next suite's setup prints ("passed    [SKIPPED] PERSISTENT
    # RESERVE IN is not implemented."): only what came before the result word is this test's.
    if (match(text, /(^|\.\.\.)passed/)) {
        skipped_in(substr(text, 1, RSTART - 1))
        close_test("passed")
        return
    }
    skipped_in(text)
}
function skipped_in(text) {
    if (index(text, "[SKIPPED]")) skipped = 1
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
