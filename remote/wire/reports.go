package wire

import "smp/repo/report"

// The replies of GET /v1/stats and POST /v1/gc are the store's own report
// shapes (package report), sent as JSON.
type (
	Stats         = report.Stats
	StatsReply    = report.StatsReply
	RecordUsage   = report.RecordUsage
	ComputerUsage = report.ComputerUsage
	GCReport      = report.GCReport
	GCReply       = report.GCReply
)
