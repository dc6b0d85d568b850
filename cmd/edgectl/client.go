package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// client calls the admin API.
type client struct {
	base       string
	credential string
	http       *http.Client
}

// apiError is a non-2xx answer of the admin API. Its text carries the
// status and the API's {"code","message"}, so that operators and scripts
// see why the call was refused.
type apiError struct {
	Status  int
	status  string // "401 Unauthorized"
	Code    string // the API's error code; empty when the body had none
	Message string // the API's message, or the start of the raw body
}

func (e *apiError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s: %s: %s", e.status, e.Code, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.status, e.Message)
}

// print GETs path and copies the JSON answer to stdout.
func (c *client) print(ctx context.Context, path string, stdout io.Writer) error {
	var out json.RawMessage
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// do sends body as JSON and decodes a 2xx answer into out (when not nil).
// Non-2xx answers become *apiError.
func (c *client) do(ctx context.Context, method, path string, body, out any) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("%s %s: %w", method, redactPath(path), err)
		}
	}()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.credential != "" {
		req.Header.Set("Authorization", "Bearer "+c.credential)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // its text repeats the URL, token included
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode, status: resp.Status}
		var body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &body) == nil && (body.Code != "" || body.Message != "") {
			e.Code, e.Message = body.Code, body.Message
		} else {
			e.Message = strings.TrimSpace(string(data))
		}
		if len(e.Message) > 300 {
			e.Message = e.Message[:300] + "…"
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

// redactPath hides most of a token in /v1/tokens/<token> so that error
// messages, which end up in terminals and CI logs, never carry a usable token.
func redactPath(path string) string {
	const p = "/v1/tokens/"
	if tok, ok := strings.CutPrefix(path, p); ok && len(tok) > 4 {
		return p + tok[:4] + "…"
	}
	return path
}
