package server

import (
	"fmt"
	"testing"

	"smp/storage/s3"
)

// TestMetricsS3Retries: a server of a store on S3 exports the process's
// S3 retry counters, one series per class (present before the first
// retry), and a server of a local store does not.
func TestMetricsS3Retries(t *testing.T) {
	m, _ := newTestMetrics(t, &metricsGauges{})
	if hasMetricPrefix(scrapeMetrics(t, m), "smp_s3_") {
		t.Fatal("smp_s3_ metrics exported without ExportS3Retries")
	}
	m.ExportS3Retries()
	lines := scrapeMetrics(t, m)
	r := s3.Retries() // no request of this process retried, so stable
	var want []string
	for _, c := range s3.Classes() {
		want = append(want,
			fmt.Sprintf(`smp_s3_retries_total{class="%s"} %d`, c, r.Retried[c]),
			fmt.Sprintf(`smp_s3_failed_requests_total{class="%s"} %d`, c, r.GaveUp[c]))
	}
	want = append(want, fmt.Sprintf("smp_s3_longest_retry_seconds %g", r.Longest.Seconds()))
	wantMetricLines(t, lines, want...)
}
