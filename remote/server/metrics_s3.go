package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"smp/storage/s3"
)

// s3Collector exposes the retries of the process's requests to an S3
// object store (s3.Retries): how often the object store failed
// transiently, by class, and whether retrying stayed within its bound.
type s3Collector struct{}

var (
	descS3Retries = prometheus.NewDesc("smp_s3_retries_total",
		"Requests to the S3 object store retried after a transient failure, by class of the failure: 5xx (the object store failed), throttled (429 or SlowDown), timeout (no answer in time, or a stalled body), connection (refused, reset or cut), conflict (a conditional write raced another).", []string{"class"}, nil)
	descS3GaveUp = prometheus.NewDesc("smp_s3_failed_requests_total",
		"Requests to the S3 object store that still failed when their retry bound (attempts, or time since the first failure) was reached, by class of the last failure.", []string{"class"}, nil)
	descS3Longest = prometheus.NewDesc("smp_s3_longest_retry_seconds",
		"The longest time from a request's first failure to the start of its last retry, since the server started (bounded by the storage's retry time).", nil, nil)
)

// ExportS3Retries adds the S3 retry metrics to m's registry (a server of
// a store on S3).
func (m *Metrics) ExportS3Retries() { m.reg.MustRegister(s3Collector{}) }

func (s3Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descS3Retries
	ch <- descS3GaveUp
	ch <- descS3Longest
}

func (s3Collector) Collect(ch chan<- prometheus.Metric) {
	r := s3.Retries()
	for _, c := range s3.Classes() {
		ch <- prometheus.MustNewConstMetric(descS3Retries, prometheus.CounterValue, float64(r.Retried[c]), c.String())
		ch <- prometheus.MustNewConstMetric(descS3GaveUp, prometheus.CounterValue, float64(r.GaveUp[c]), c.String())
	}
	ch <- prometheus.MustNewConstMetric(descS3Longest, prometheus.GaugeValue, r.Longest.Seconds())
}
