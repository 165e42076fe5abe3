// loadgen: an HTTP load generator for paysync's benchmarks, standard library only.
//
// Open loop (-rate N): request i is due at start + i/N whatever happened to earlier ones, and its
// latency is measured from when it was due, so a stalled server cannot hide its stall
// (no coordinated omission). Closed loop (-rate 0): -workers connections send back to back, for
// the maximum sustained throughput. Targets are JSON lines {"method","url","body"(base64),"header"}.
//
// Two more programs for the end-to-end benchmark share the binary: `loadgen sse` (server-sent-events
// clients noting when each payment's event arrived, sse.go) and `loadgen poll` (a client polling
// payments with If-None-Match until their status changed, poll.go).
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
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
	wire   []byte // -client raw: the whole request, built once
	addr   string // -client raw: the server's host:port
}

type result struct {
	at      time.Duration // when the request was due (open loop) or sent, from the start
	latency time.Duration
	status  int
	err     string
	index   int // which target it sent
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "sse":
			runSSE(os.Args[2:])
			return
		case "poll":
			runPoll(os.Args[2:])
			return
		}
	}
	targetsPath := flag.String("targets", "", "JSON-lines targets file")
	rate := flag.Int("rate", 0, "requests per second (0: closed loop)")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	workers := flag.Int("workers", 32, "closed loop: connections; open loop: max in flight")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	timeline := flag.String("timeline", "", "also write each request's start (ms), latency (ms) and status here (CSV)")
	acks := flag.String("acks", "", "also write each request's target index, due and answer times (unix µs) and status here (CSV)")
	startAt := flag.Int64("start-at", 0, "start at this wall-clock time (unix ms), so others know when each request is due")
	once := flag.Bool("once", false, "send each target at most once (stop early when they run out)")
	// Below the services' keep-alive (PAYSYNC_HTTP_KEEP_ALIVE_SECONDS, 5 s): a connection idle longer
	// is closed by the server, and a POST sent on it as it closes ends in EOF, which Go does not retry.
	idleTimeout := flag.Duration("idle-timeout", 4*time.Second, "close connections idle this long")
	defaultClient := os.Getenv("LOADGEN_CLIENT") // lets a bench run both clients without a flag of its own
	if defaultClient == "" {
		defaultClient = "raw"
	}
	clientKind := flag.String("client", defaultClient, "raw: lean HTTP/1.1 (raw.go); std: Go's net/http client (default $LOADGEN_CLIENT, else raw)")
	flag.Parse()

	targets, err := load(*targetsPath)
	if err != nil || len(targets) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: no targets:", err)
		os.Exit(2)
	}
	send, err := newSender(*clientKind, targets, *workers*2, *timeout, *idleTimeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	if *startAt > 0 {
		time.Sleep(time.Until(time.UnixMilli(*startAt)))
	}
	start := time.Now()
	if *startAt > 0 {
		start = time.UnixMilli(*startAt) // due times counted from the agreed start, not from waking up
	}
	// Each worker claims the next request, (open loop) sleeps until it is due, sends it and keeps its
	// result: no goroutine, channel or collector a request, which cost more CPU than the request
	// itself at a fixed rate. At most -workers requests are in flight either way.
	total := len(targets) // -once: each target at most once
	if !*once {
		total = math.MaxInt
	}
	var interval time.Duration
	if *rate > 0 {
		interval = time.Second / time.Duration(*rate)
		total = min(total, int(duration.Seconds()*float64(*rate)))
	}
	var claimed atomic.Int64
	kept := make([][]result, *workers)
	var wg sync.WaitGroup
	for w := range kept {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(claimed.Add(1) - 1)
				if i >= total {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if *rate == 0 {
					if due = time.Now(); due.Sub(start) >= *duration {
						return
					}
				} else if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				status, err := send(&targets[i%len(targets)])
				kept[w] = append(kept[w], result{due.Sub(start), time.Since(due), status, err, i})
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var collected []result
	for _, rs := range kept {
		collected = append(collected, rs...)
	}
	sort.Slice(collected, func(a, b int) bool { return collected[a].at < collected[b].at })
	report(collected, elapsed, *rate)
	if *timeline != "" {
		writeTimeline(*timeline, collected)
	}
	if *acks != "" {
		writeAcks(*acks, start, collected)
	}
}

// writeAcks writes, per request, the target it sent, when it was due (open loop; closed loop: sent)
// and answered, on the wall clock in unix microseconds, and the status: the end-to-end benchmark
// joins them with when each payment's change was seen.
func writeAcks(path string, start time.Time, rs []result) {
	err := writeCSV(path, "index,due_us,answered_us,status", len(rs), func(w io.Writer, i int) {
		due := start.Add(rs[i].at)
		fmt.Fprintf(w, "%d,%d,%d,%d\n", rs[i].index, due.UnixMicro(), due.Add(rs[i].latency).UnixMicro(), rs[i].status)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
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

// newSender returns the function that makes one request with the client `kind` names.
func newSender(kind string, targets []target, conns int, timeout, idleTimeout time.Duration) (func(*target) (int, string), error) {
	switch kind {
	case "raw":
		c, err := newRawClient(targets, conns, timeout, idleTimeout)
		if err != nil {
			return nil, err
		}
		return c.do, nil
	case "std":
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: idleTimeout,
		}}
		return func(t *target) (int, string) { return sendStd(client, t) }, nil
	}
	return nil, fmt.Errorf("-client %q: raw or std", kind)
}

// sendStd makes one request with net/http; status 0 and the error when no HTTP answer came.
func sendStd(client *http.Client, t *target) (int, string) {
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
