// Package promtest reads the Prometheus text exposition format for the
// tests, with Prometheus' own parser (names valid under the legacy scheme,
// as every Prometheus reads them).
package promtest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// Parse parses text into metric families, failing t on a parse error.
func Parse(t testing.TB, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	require.NoError(t, err, "%s", text)
	return families
}

// Samples flattens families into one value per sample, keyed as the text
// shows it: name{label="value"}, histograms as _sum, _count and
// _bucket{le="..."} (cumulative). A family of another type fails t.
func Samples(t testing.TB, families map[string]*dto.MetricFamily) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key+"_sum"] = h.GetSampleSum()
				out[key+"_count"] = float64(h.GetSampleCount())
				for _, b := range h.GetBucket() {
					out[fmt.Sprintf("%s_bucket{le=%q}", key, strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))] = float64(b.GetCumulativeCount())
				}
			default:
				t.Fatalf("family %s: unexpected type %v", name, mf.GetType())
			}
		}
	}
	return out
}
