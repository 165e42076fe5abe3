package main

// `loadgen sse`: live-stream clients for the end-to-end benchmark. Each client holds one
// server-sent-events stream open and notes, on the wall clock, when each payment's event reached
// it; Go keeps hundreds of such clients cheap, so they do not take the two cores from the services
// they measure. While it runs it prints `opened=N failed=N received=N` lines (every 100 ms) for the
// benchmark to wait on; when its standard input closes it writes the arrivals and exits.

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// sseClient is one line of the clients file: the stream's URL and its request headers.
type sseClient struct {
	URL    string              `json:"url"`
	Header map[string][]string `json:"header"`
}

// arrival is one payment's event reaching one client.
type arrival struct {
	client    int
	paymentID string
	at        int64 // unix µs
}

var paymentIDField = []byte(`"payment_id":"`)

func runSSE(args []string) {
	fs := flag.NewFlagSet("sse", flag.ExitOnError)
	clientsPath := fs.String("clients", "", "JSON lines, one client each: {\"url\", \"header\"}")
	out := fs.String("out", "", "where to write the arrivals (CSV: client,payment_id,arrival_us)")
	fs.Parse(args)

	clients, err := loadLines[sseClient](*clientsPath)
	if err != nil || len(clients) == 0 || *out == "" {
		fmt.Fprintln(os.Stderr, "loadgen sse: need -clients (non-empty) and -out:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: len(clients)}}
	var opened, failed, received atomic.Int64
	var mu sync.Mutex
	var arrivals []arrival
	var wg sync.WaitGroup
	for n, c := range clients {
		wg.Add(1)
		go func(n int, c sseClient) {
			defer wg.Done()
			got, ok := readStream(ctx, client, n, c, &opened, &received)
			if !ok {
				failed.Add(1)
			}
			mu.Lock()
			arrivals = append(arrivals, got...)
			mu.Unlock()
		}(n, c)
	}
	stop := make(chan struct{})
	go func() { // the benchmark closes our standard input to stop us
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for running := true; running; {
		select {
		case <-stop:
			running = false
		case <-ticker.C:
		}
		fmt.Printf("opened=%d failed=%d received=%d\n", opened.Load(), failed.Load(), received.Load())
	}
	cancel()
	wg.Wait()
	err = writeCSV(*out, "client,payment_id,arrival_us", len(arrivals), func(w io.Writer, i int) {
		fmt.Fprintf(w, "%d,%s,%d\n", arrivals[i].client, arrivals[i].paymentID, arrivals[i].at)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen sse:", err)
		os.Exit(1)
	}
	fmt.Printf("done opened=%d failed=%d received=%d\n", opened.Load(), failed.Load(), received.Load())
}

// readStream reads one client's stream until ctx ends; its arrivals, and false if it never opened.
func readStream(
	ctx context.Context, client *http.Client, n int, c sseClient, opened, received *atomic.Int64,
) ([]arrival, bool) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.URL, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen sse:", err)
		return nil, false
	}
	req.Header = c.Header
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen sse: client %d: %v\n", n, err)
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		fmt.Fprintf(os.Stderr, "loadgen sse: client %d: %d %s\n", n, resp.StatusCode, body)
		return nil, false
	}
	var got []arrival
	lines := bufio.NewReaderSize(resp.Body, 64<<10)
	for first := true; ; first = false {
		line, err := lines.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			continue // a longer line than any event of ours: not one we read
		}
		if err != nil {
			return got, !first // cancelled at the end, or the server closed the stream
		}
		if first {
			// The stream's first line comes once the notifier has subscribed it: from here on,
			// no change is missed, so only now does the client count as open.
			opened.Add(1)
		}
		if !bytes.HasPrefix(line, []byte("data:")) {
			continue
		}
		if id := fieldAfter(line, paymentIDField); id != "" {
			got = append(got, arrival{n, id, time.Now().UnixMicro()})
			received.Add(1)
		}
	}
}

// fieldAfter is the string value following `key` in a line of JSON ("" if absent): cheaper than
// decoding every event, and the payment id is a UUID, which needs no unescaping.
func fieldAfter(line, key []byte) string {
	at := bytes.Index(line, key)
	if at < 0 {
		return ""
	}
	rest := line[at+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return string(rest[:end])
}
