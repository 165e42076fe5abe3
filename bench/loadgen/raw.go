package main

// The lean client (-client raw, the default): HTTP/1.1 on kept-alive TCP connections, each target's
// request written as bytes built once, each answer's status line and framing headers read and its
// body discarded. The load generator shares the two cores with the service it measures; Go's
// net/http client (-client std) spends several times the CPU a request (a request and a response
// object, header maps, two goroutines a connection and a channel hand-off each way), and whatever it
// spends is taken from the service under test. Both speak the same HTTP on the wire.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawClient keeps idle connections per server address, closing those idle past idleTimeout (below
// the server's keep-alive: a request sent on a connection the server is closing is lost).
type rawClient struct {
	pools       map[string]chan *rawConn
	timeout     time.Duration
	idleTimeout time.Duration
}

type rawConn struct {
	net.Conn
	r        *bufio.Reader
	lastUsed time.Time
}

// newRawClient builds each target's request bytes (`wire`, `addr`) and a pool per address.
func newRawClient(targets []target, conns int, timeout, idleTimeout time.Duration) (*rawClient, error) {
	c := &rawClient{pools: map[string]chan *rawConn{}, timeout: timeout, idleTimeout: idleTimeout}
	for i := range targets {
		t := &targets[i]
		u, err := url.Parse(t.URL)
		if err != nil {
			return nil, err
		}
		if u.Scheme != "http" {
			return nil, fmt.Errorf("the raw client speaks plain http only, not %q (use -client std)", u.Scheme)
		}
		t.addr = u.Host
		if u.Port() == "" {
			t.addr = net.JoinHostPort(u.Hostname(), "80")
		}
		t.wire = requestBytes(t, u)
		if _, ok := c.pools[t.addr]; !ok {
			c.pools[t.addr] = make(chan *rawConn, conns)
		}
	}
	return c, nil
}

func requestBytes(t *target, u *url.URL) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", t.Method, u.RequestURI(), u.Host)
	for name, values := range t.Header {
		for _, v := range values {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	if len(t.body) > 0 || (t.Method != "GET" && t.Method != "HEAD") {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(t.body))
	}
	b.WriteString("\r\n")
	b.Write(t.body)
	return b.Bytes()
}

// do sends t and reads its answer: the status, or 0 and the error when no HTTP answer came.
func (c *rawClient) do(t *target) (int, string) {
	conn, err := c.get(t.addr)
	if err != nil {
		return 0, err.Error()
	}
	conn.SetDeadline(time.Now().Add(c.timeout))
	if _, err := conn.Write(t.wire); err != nil {
		conn.Close()
		return 0, err.Error()
	}
	status, keep, err := readAnswer(conn.r, t.Method == "HEAD")
	if err != nil {
		conn.Close()
		return 0, err.Error()
	}
	if keep {
		c.put(t.addr, conn)
	} else {
		conn.Close()
	}
	return status, ""
}

func (c *rawClient) get(addr string) (*rawConn, error) {
	for {
		select {
		case conn := <-c.pools[addr]:
			if time.Since(conn.lastUsed) < c.idleTimeout {
				return conn, nil
			}
			conn.Close()
		default:
			nc, err := net.DialTimeout("tcp", addr, c.timeout)
			if err != nil {
				return nil, err
			}
			return &rawConn{Conn: nc, r: bufio.NewReaderSize(nc, 16<<10)}, nil
		}
	}
}

func (c *rawClient) put(addr string, conn *rawConn) {
	conn.lastUsed = time.Now()
	select {
	case c.pools[addr] <- conn:
	default:
		conn.Close()
	}
}

var errBadAnswer = errors.New("malformed HTTP answer")

// readAnswer reads one HTTP/1.x answer: its status, and whether the connection may be used again.
func readAnswer(r *bufio.Reader, head bool) (status int, keep bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errBadAnswer
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, errBadAnswer
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(h) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, errBadAnswer
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, errBadAnswer
			}
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case head || status == 204 || status == 304 || status < 200:
	case chunked:
		err = discardChunks(r)
	case length >= 0:
		_, err = r.Discard(length)
	default:
		_, err = io.Copy(io.Discard, r) // the body runs to the connection's close
		keep = false
	}
	return status, keep && err == nil, err
}

func discardChunks(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return errBadAnswer
		}
		if n == 0 { // the last chunk; then trailers until an empty line
			for {
				if line, err = r.ReadSlice('\n'); err != nil || len(line) <= 2 {
					return err
				}
			}
		}
		if _, err := r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
