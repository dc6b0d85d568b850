package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

func purge(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("purge", "-bucket B (-key K | -prefix P)",
		"Drops cached copies of one object or of every object under a prefix, on this edge node,\n"+
			"and prints {\"purged\": N}. The origin is not touched.")
	var r struct {
		Bucket string `json:"bucket"`
		Key    string `json:"key,omitempty"`
		Prefix string `json:"prefix,omitempty"`
	}
	cmd.fs.StringVar(&r.Bucket, "bucket", "", "origin bucket (required)")
	cmd.fs.StringVar(&r.Key, "key", "", "one object key")
	cmd.fs.StringVar(&r.Prefix, "prefix", "", "every key with this prefix")
	if err := cmd.parse(args); err != nil {
		return err
	}
	if r.Bucket == "" || (r.Key == "") == (r.Prefix == "") {
		return cmd.usagef("give -bucket and exactly one of -key or -prefix")
	}
	var out json.RawMessage
	if err := x.api.do(ctx, http.MethodPost, "/v1/purge", r, &out); err != nil {
		return err
	}
	_, err := fmt.Fprintf(x.stdout, "%s\n", out)
	return err
}

func stats(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("stats", "", "Prints the edge node's statistics as JSON.")
	if err := cmd.parse(args); err != nil {
		return err
	}
	return x.api.print(ctx, "/v1/stats", x.stdout)
}
