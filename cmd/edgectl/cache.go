package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
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
	cmd := newCommand("stats", "[-hot N | -file ID | -task ID]",
		"Prints statistics as JSON: the edge node's cache counters (no flag), the N hottest files\n"+
			"of the hot set (-hot), one file's access counts (-file: accesses, the live counter in Redis,\n"+
			"and synced, the total the sync moved into PostgreSQL when it is configured), or a download\n"+
			"task's progress (-task).")
	hot := cmd.fs.Int("hot", 0, "print the N hottest files (1..1000)")
	file := cmd.fs.String("file", "", "print this file id's access counter")
	task := cmd.fs.String("task", "", "print this download task's progress")
	if err := cmd.parse(args); err != nil {
		return err
	}
	set := 0
	for _, on := range []bool{*hot != 0, *file != "", *task != ""} {
		if on {
			set++
		}
	}
	switch {
	case set > 1:
		return cmd.usagef("give at most one of -hot, -file, -task")
	case *hot < 0 || *hot > 1000:
		return cmd.usagef("-hot takes 1..1000")
	case *hot > 0:
		return x.api.print(ctx, "/v1/stats/hot?n="+strconv.Itoa(*hot), x.stdout)
	case *file != "":
		return x.api.print(ctx, "/v1/stats/files/"+url.PathEscape(*file), x.stdout)
	case *task != "":
		return x.api.print(ctx, "/v1/tasks/"+url.PathEscape(*task), x.stdout)
	}
	return x.api.print(ctx, "/v1/stats", x.stdout)
}
