package main

// The files loadgen's programs share with the benchmark: JSON-lines inputs, CSV outputs.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
)

// loadLines decodes a JSON-lines file: one T per non-blank line.
func loadLines[T any](path string) ([]T, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var item T
		if err := json.Unmarshal(line, &item); err != nil {
			return nil, err
		}
		out = append(out, item)
	}
	return out, nil
}

// writeCSV writes the header line, then `rows` lines, each written by `line`.
func writeCSV(path, header string, rows int, line func(w io.Writer, i int)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	io.WriteString(w, header+"\n")
	for i := 0; i < rows; i++ {
		line(w, i)
	}
	return w.Flush()
}
