# Turns every ```c block of a Markdown file into one C program, so that the
# test suite compiles (warnings as errors) and runs the documentation's code:
#   awk -f snippets.awk README.md > snippets_README.c
# A block that defines something at file scope (a line at column 0 that
# starts with static or typedef, opens a struct definition, or is a
# function's header) is copied as it is. Any other block is a run of
# statements: it becomes the body of a function of its own, and main calls
# those in document order on a pool that snippets.h declares as `pool`.
# #line directives point compiler errors at the Markdown file.
function flush(   i) {
    if (filescope) {
        printf "#line %d \"%s\"\n%s", first, FILENAME, body
    } else {
        n++
        printf "static void snippet_%d(void)\n{\n#line %d \"%s\"\n%s}\n", n, first, FILENAME, body
    }
}
BEGIN { print "#include \"snippets.h\"" }
/^```c$/ { inblock = 1; body = ""; filescope = 0; first = FNR + 1; next }
inblock && /^```$/ { inblock = 0; flush(); next }
inblock {
    body = body $0 "\n"
    if ($0 ~ /^(static|typedef) / || $0 ~ /^struct [A-Za-z_0-9]+ \{/ ||
        $0 ~ /^[A-Za-z_][A-Za-z_0-9 ]*[ *][A-Za-z_][A-Za-z_0-9]*\(.*\)$/)
        filescope = 1
    next
}
END {
    print "int main(void)\n{"
    print "    if (fut_pool_create(&pool, NULL) != 0)\n        return 1;"
    for (i = 1; i <= n; i++)
        printf "    snippet_%d();\n", i
    print "    return fut_pool_destroy(pool) != 0;\n}"
}
