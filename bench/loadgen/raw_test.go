package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server is a real HTTP server (net/http) answering each framing the raw client must read, and
// counting the connections it accepted.
func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"succeeded"}`)
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "part %d;", i)
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/unchanged", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/payments", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.Header.Get("Authorization") != "Bearer k" || string(body) != `{"a":1}` ||
			r.Host == "" || r.URL.RawQuery != "x=1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"p"}`)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func client(t *testing.T, srv *httptest.Server, idle time.Duration, specs ...target) (*rawClient, []target) {
	for i := range specs {
		specs[i].URL = srv.URL + specs[i].URL
	}
	c, err := newRawClient(specs, 4, 5*time.Second, idle)
	if err != nil {
		t.Fatal(err)
	}
	return c, specs
}

func TestEachFramingIsReadAndTheConnectionKept(t *testing.T) {
	srv, conns := server(t)
	c, ts := client(t, srv, time.Minute,
		target{Method: "GET", URL: "/length"},
		target{Method: "GET", URL: "/chunked"},
		target{Method: "GET", URL: "/unchanged"},
		target{Method: "POST", URL: "/payments?x=1", Header: map[string][]string{"Authorization": {"Bearer k"}}, body: []byte(`{"a":1}`)},
	)
	want := []int{200, 200, 304, 201}
	for round := 0; round < 3; round++ {
		for i := range ts {
			if status, err := c.do(&ts[i]); status != want[i] || err != "" {
				t.Fatalf("%s %s: %d %q, want %d", ts[i].Method, ts[i].URL, status, err, want[i])
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("12 requests one after another took %d connections, want 1", n)
	}
}

func TestConnectionCloseAndIdleConnectionsAreNotUsedAgain(t *testing.T) {
	srv, conns := server(t)
	c, ts := client(t, srv, 50*time.Millisecond, target{Method: "GET", URL: "/close"}, target{Method: "GET", URL: "/length"})
	for i := 0; i < 2; i++ {
		if status, err := c.do(&ts[0]); status != 200 || err != "" {
			t.Fatalf("/close: %d %q", status, err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("two answers with Connection: close took %d connections, want 2", n)
	}
	c.do(&ts[1])
	time.Sleep(100 * time.Millisecond) // longer than the idle timeout: the next request dials
	if status, err := c.do(&ts[1]); status != 200 || err != "" {
		t.Fatalf("/length: %d %q", status, err)
	}
	if n := conns.Load(); n != 4 {
		t.Fatalf("connections: %d, want 4 (one kept past its idle timeout)", n)
	}
}

func TestNoAnswerIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { // accepts, reads the request, answers garbage
		conn, err := ln.Accept()
		if err == nil {
			conn.Read(make([]byte, 4096))
			io.WriteString(conn, "garbage\r\n\r\n")
			conn.Close()
		}
	}()
	defer ln.Close()
	ts := []target{{Method: "GET", URL: "http://" + ln.Addr().String() + "/"}}
	c, err := newRawClient(ts, 1, time.Second, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, msg := c.do(&ts[0]); status != 0 || !strings.Contains(msg, "malformed") {
		t.Fatalf("garbage answer: %d %q, want 0 and an error", status, msg)
	}
}

func TestOnlyPlainHTTPIsTaken(t *testing.T) {
	if _, err := newRawClient([]target{{Method: "GET", URL: "https://127.0.0.1:1/"}}, 1, time.Second, time.Second); err == nil {
		t.Fatal("https target taken by the raw client")
	}
}
