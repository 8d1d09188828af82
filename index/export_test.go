package index

// CheckTables exposes the pre-open table check to benchmarks.
var CheckTables = checkTables
