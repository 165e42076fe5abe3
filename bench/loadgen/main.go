// loadgen: an HTTP load generator for paysync's benchmarks, standard library only.
//
// Open loop (-rate N): request i is due at start + i/N whatever happened to earlier ones, and its
// latency is measured from when it was due, so a stalled server cannot hide its stall
// (no coordinated omission). Closed loop (-rate 0): -workers connections send back to back, for
// the maximum sustained throughput. Targets are JSON lines {"method","url","body"(base64),"header"}.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type target struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Body   string              `json:"body"`
	Header map[string][]string `json:"header"`
	body   []byte
}

type result struct {
	at      time.Duration // when the request was due (open loop) or sent, from the start
	latency time.Duration
	status  int
	err     string
}

func main() {
	targetsPath := flag.String("targets", "", "JSON-lines targets file")
	rate := flag.Int("rate", 0, "requests per second (0: closed loop)")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	workers := flag.Int("workers", 32, "closed loop: connections; open loop: max in flight")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	timeline := flag.String("timeline", "", "also write each request's start (ms), latency (ms) and status here (CSV)")
	flag.Parse()

	targets, err := load(*targetsPath)
	if err != nil || len(targets) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: no targets:", err)
		os.Exit(2)
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		MaxIdleConns: *workers * 2, MaxIdleConnsPerHost: *workers * 2, MaxConnsPerHost: *workers * 2,
	}}
	var next atomic.Int64
	pick := func() *target { return &targets[int(next.Add(1)-1)%len(targets)] }

	results := make(chan result, 1<<16)
	var collected []result
	done := make(chan struct{})
	go func() {
		for r := range results {
			collected = append(collected, r)
		}
		close(done)
	}()

	start := time.Now()
	var wg sync.WaitGroup
	if *rate == 0 {
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < *duration {
					sent := time.Now()
					status, err := send(client, pick())
					results <- result{sent.Sub(start), time.Since(sent), status, err}
				}
			}()
		}
	} else {
		interval := time.Second / time.Duration(*rate)
		inFlight := make(chan struct{}, *workers)
		total := int(duration.Seconds() * float64(*rate))
		for i := 0; i < total; i++ {
			due := start.Add(time.Duration(i) * interval)
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
			inFlight <- struct{}{}
			wg.Add(1)
			go func(due time.Time, t *target) {
				defer wg.Done()
				status, err := send(client, t)
				<-inFlight
				results <- result{due.Sub(start), time.Since(due), status, err}
			}(due, pick())
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(results)
	<-done
	report(collected, elapsed, *rate)
	if *timeline != "" {
		writeTimeline(*timeline, collected)
	}
}

func writeTimeline(path string, rs []result) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	defer w.Flush()
	fmt.Fprintln(w, "start_ms,latency_ms,status")
	for _, r := range rs {
		fmt.Fprintf(w, "%.3f,%.3f,%d\n", float64(r.at.Microseconds())/1000, float64(r.latency.Microseconds())/1000, r.status)
	}
}

// send makes one request; status 0 and the error when no HTTP answer came.
func send(client *http.Client, t *target) (int, string) {
	req, err := http.NewRequest(t.Method, t.URL, bytes.NewReader(t.body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header = t.Header
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, ""
}

func load(path string) ([]target, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []target
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	for scanner.Scan() {
		var t target
		if err := json.Unmarshal(scanner.Bytes(), &t); err != nil {
			return nil, err
		}
		if t.body, err = base64.StdEncoding.DecodeString(t.Body); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, scanner.Err()
}

func report(all []result, elapsed time.Duration, rate int) {
	rs := all
	codes := map[string]int{}
	errs := map[string]int{}
	ok := 0
	lat := make([]float64, 0, len(rs))
	for _, r := range rs {
		codes[fmt.Sprint(r.status)]++
		if r.err != "" {
			errs[r.err]++
		}
		if r.status >= 200 && r.status < 300 {
			ok++
		}
		lat = append(lat, float64(r.latency.Microseconds())/1000)
	}
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))]
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requests": len(rs), "ok": ok, "elapsed_s": elapsed.Seconds(), "offered_rate": rate,
		"throughput_ok_per_s": float64(ok) / elapsed.Seconds(), "status_codes": codes, "errors": errs,
		"p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": pct(1.0),
	})
}
