// An empty program linked like psnic (static): what hyperfine -N measures for a process that does
// nothing. No program, psnic included, can start faster on the same machine.
int main() { return 0; }
