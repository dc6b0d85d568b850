package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type tokenRequest struct {
	FileID    string   `json:"file_id"`
	Bucket    string   `json:"bucket,omitempty"`
	UserID    string   `json:"user_id,omitempty"`
	AllowedIP []string `json:"allowed_ip,omitempty"`
	MaxUses   int      `json:"max_uses,omitempty"`
	Rate      int64    `json:"rate,omitempty"`
	TTL       string   `json:"ttl,omitempty"`
}

func tokenCreate(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("token create", "-file ID [-bucket NAME] [-user ID] [-ip LIST] [-max-uses N] [-rate BYTES_PER_S] [-ttl D]\n"+
		"       edgectl token create -upload -bucket B (-key K | -prefix P) [-file ID] [-max-size N] [-ttl D]",
		"Issues a download token for one file and prints {\"token\",\"expires_at\",\"file_id\",\"url\"}.\n"+
			"Without -bucket the token opens /download/ID only (a catalog id or a key of the download bucket).\n"+
			"With -bucket it opens the object key ID of that bucket on the host routes serving it, and no other\n"+
			"bucket's; there is no url then. The token is a credential: hand it to the one client it is for.\n\n"+
			"With -upload it issues a tus upload token instead and prints {\"token\",\"expires_at\",\"endpoint\"}:\n"+
			"uploads into bucket B at key K or under prefix P (P<file name>), each at most N bytes (0: the\n"+
			"edge's upload.max_size), registered in the catalog as -file (default: the upload id). -ttl\n"+
			"(default 1h) bounds creation only: a started upload resumes until the upload expires.")
	var r tokenRequest
	var ips string
	var ttl time.Duration
	var up bool
	var ur uploadTokenRequest
	cmd.fs.BoolVar(&up, "upload", false, "issue a tus upload token (with -bucket and -key or -prefix)")
	cmd.fs.StringVar(&ur.Key, "key", "", "with -upload: the object key the upload writes")
	cmd.fs.StringVar(&ur.Prefix, "prefix", "", "with -upload: the key prefix uploads go under")
	cmd.fs.Int64Var(&ur.MaxSize, "max-size", 0, "with -upload: largest upload in bytes (0: the edge's maximum)")
	cmd.fs.StringVar(&r.FileID, "file", "", "file id under /download/, or with -bucket the object key (required)")
	cmd.fs.StringVar(&r.Bucket, "bucket", "", "bucket of a host route the token is for (default: /download/)")
	cmd.fs.StringVar(&r.UserID, "user", "", "user id, recorded with the token")
	cmd.fs.StringVar(&ips, "ip", "", "IPs and CIDRs the token may be used from, comma-separated (default any)")
	cmd.fs.IntVar(&r.MaxUses, "max-uses", 0, "download sessions allowed (0: unlimited)")
	cmd.fs.Int64Var(&r.Rate, "rate", 0, "bandwidth limit in bytes per second (0: none)")
	cmd.fs.DurationVar(&ttl, "ttl", 0, "lifetime (0: the server's default)")
	if err := cmd.parse(args); err != nil {
		return err
	}
	if up {
		if r.UserID != "" || ips != "" || r.MaxUses != 0 || r.Rate != 0 {
			return cmd.usagef("-user, -ip, -max-uses and -rate are for download tokens, not -upload")
		}
		ur.Bucket, ur.FileID = r.Bucket, r.FileID
		return uploadTokenCreate(ctx, x, cmd, ur, ttl)
	}
	if ur != (uploadTokenRequest{}) {
		return cmd.usagef("-key, -prefix and -max-size need -upload")
	}
	switch {
	case r.FileID == "":
		return cmd.usagef("-file is required")
	case r.MaxUses < 0 || r.Rate < 0 || ttl < 0:
		return cmd.usagef("-max-uses, -rate and -ttl must not be negative")
	}
	for ip := range strings.SplitSeq(ips, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			r.AllowedIP = append(r.AllowedIP, ip)
		}
	}
	if ttl > 0 {
		r.TTL = ttl.String()
	}
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		FileID    string `json:"file_id,omitempty"`
		URL       string `json:"url,omitempty"`
	}
	if err := x.api.do(ctx, http.MethodPost, "/v1/tokens", r, &out); err != nil {
		return err
	}
	if out.Token == "" {
		return errors.New("token create: the API answered without a token")
	}
	return json.NewEncoder(x.stdout).Encode(out)
}

// uploadTokenRequest is the body of POST /v1/upload-tokens.
type uploadTokenRequest struct {
	Bucket  string `json:"bucket"`
	Key     string `json:"key,omitempty"`
	Prefix  string `json:"prefix,omitempty"`
	FileID  string `json:"file_id,omitempty"`
	MaxSize int64  `json:"max_size,omitempty"`
	TTL     string `json:"ttl,omitempty"`
}

func uploadTokenCreate(ctx context.Context, x *cli, cmd *command, r uploadTokenRequest, ttl time.Duration) error {
	switch {
	case r.Bucket == "":
		return cmd.usagef("-upload needs -bucket")
	case (r.Key == "") == (r.Prefix == ""):
		return cmd.usagef("-upload needs exactly one of -key and -prefix")
	case r.MaxSize < 0 || ttl < 0:
		return cmd.usagef("-max-size and -ttl must not be negative")
	}
	if ttl > 0 {
		r.TTL = ttl.String()
	}
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		Endpoint  string `json:"endpoint"`
	}
	if err := x.api.do(ctx, http.MethodPost, "/v1/upload-tokens", r, &out); err != nil {
		return err
	}
	if out.Token == "" {
		return errors.New("token create: the API answered without a token")
	}
	return json.NewEncoder(x.stdout).Encode(out)
}

func tokenRevoke(ctx context.Context, x *cli, args []string) error {
	cmd := newCommand("token revoke", "TOKEN",
		"Deletes a token; every edge node stops accepting it within a second.\n"+
			"Exits 1 with token_not_found when no such token exists. Write -- before a token that begins with '-'.")
	tok, err := cmd.oneArg(args, "token")
	if err != nil {
		return err
	}
	return x.api.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(tok), nil, nil)
}
