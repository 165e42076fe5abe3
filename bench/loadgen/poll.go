package main

// `loadgen poll`: the front end that polls a payment until its status changed, for the end-to-end
// benchmark. Each payment in the polls file is read from when its webhook is due, every -every,
// with the ETag of the last answer in If-None-Match (unchanged: 304, no body), backing off to a tenth
// of the time waited so far, until it shows the wanted status or -timeout passes. It writes, per payment, when the wanted status was first read
// (unix µs; 0 if never) and how many requests and 304s it took, prints `done` and waits for its
// standard input to close (so the benchmark can read its CPU time first).

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// pollTarget is one line of the polls file.
type pollTarget struct {
	Index  int         `json:"index"`
	URL    string      `json:"url"`
	DueUS  int64       `json:"due_us"`
	Want   string      `json:"want"`
	Header http.Header `json:"header"`
}

// pollResult is what polling one payment found.
type pollResult struct {
	index       int
	seenUS      int64
	requests    int
	notModified int
	errors      int
}

func runPoll(args []string) {
	fs := flag.NewFlagSet("poll", flag.ExitOnError)
	pollsPath := fs.String("polls", "", "JSON lines: {\"index\", \"url\", \"due_us\", \"want\", \"header\"}")
	every := fs.Duration("every", 10*time.Millisecond, "time between two reads of one payment")
	timeout := fs.Duration("timeout", 60*time.Second, "give a payment up this long after it was due")
	out := fs.String("out", "", "where to write the results (CSV: index,seen_us,requests,not_modified,errors)")
	fs.Parse(args)

	targets, err := loadLines[pollTarget](*pollsPath)
	if err != nil || *out == "" {
		fmt.Fprintln(os.Stderr, "loadgen poll: need -polls and -out:", err)
		os.Exit(2)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512,
	}}
	results := make([]pollResult, len(targets))
	var wg sync.WaitGroup
	for n := range targets {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			results[n] = pollOne(client, &targets[n], *every, *timeout)
		}(n)
	}
	wg.Wait()
	err = writeCSV(*out, "index,seen_us,requests,not_modified,errors", len(results), func(w io.Writer, i int) {
		r := results[i]
		fmt.Fprintf(w, "%d,%d,%d,%d,%d\n", r.index, r.seenUS, r.requests, r.notModified, r.errors)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen poll:", err)
		os.Exit(1)
	}
	fmt.Println("done")
	io.Copy(io.Discard, os.Stdin)
}

// pollOne reads one payment from its due time until it shows the wanted status, or gives up.
func pollOne(client *http.Client, t *pollTarget, every, timeout time.Duration) pollResult {
	r := pollResult{index: t.Index}
	due := time.UnixMicro(t.DueUS)
	time.Sleep(time.Until(due))
	etag := ""
	for time.Since(due) < timeout {
		status, tag, code := getStatus(client, t, etag)
		r.requests++
		switch {
		case code == http.StatusNotModified:
			r.notModified++
		case code == http.StatusOK:
			etag = tag
			if status == t.Want {
				r.seenUS = time.Now().UnixMicro()
				return r
			}
		default:
			r.errors++
		}
		time.Sleep(pause(every, time.Since(due)))
	}
	return r
}

// pause is the time until the next read: -every, or a tenth of the time since the payment was due
// once that is longer (at most a second), as a front end backs off. Each reading is then within 10%
// of the true time, and a slow path does not make the poller flood the API it measures (a payment
// still unchanged after 2 s costs ~40 reads, not 200).
func pause(every, waited time.Duration) time.Duration {
	return min(max(every, waited/10), time.Second)
}

// getStatus makes one conditional read; the payment's status and ETag (on a 200) and the HTTP status.
func getStatus(client *http.Client, t *pollTarget, etag string) (string, string, int) {
	req, err := http.NewRequest("GET", t.URL, nil)
	if err != nil {
		return "", "", 0
	}
	req.Header = t.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", "", resp.StatusCode
	}
	var payment struct {
		Status string `json:"status"`
	}
	json.Unmarshal(body, &payment)
	return payment.Status, resp.Header.Get("ETag"), resp.StatusCode
}
