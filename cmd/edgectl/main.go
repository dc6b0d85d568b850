// Command edgectl is the operator's CLI over edgeproxy's admin API: it
// issues and revokes download tokens, uploads files to the origin and
// registers them in the catalog, signs download URLs and purges the cache.
//
//	edgectl token create -file 10086 [-user 9527] [-ip 10.0.0.0/8,2001:db8::/32] [-max-uses 1] [-rate 1048576] [-ttl 1h]
//	edgectl token create -upload -bucket up (-key K | -prefix in/) [-file ID] [-max-size N] [-ttl 1h]
//	edgectl token revoke <token>
//	edgectl file put -id 10086 -bucket dl -src ./a.iso [-key iso/a.iso] [-filename a.iso] [-content-type T]
//	edgectl file put -id 10086 -bucket dl -key iso/a.iso [-size N] [-sha256 HEX] [-filename F] [-content-type T]
//	edgectl file put -bucket dl -src ./a.iso [...]    (id assigned by a PostgreSQL catalog; known content not re-uploaded)
//	edgectl file get <id>
//	edgectl file list [-after ID] [-limit N]
//	edgectl file rm <id>
//	edgectl db migrate                                   (DSN from $EDGECTL_POSTGRES_DSN, else $EDGEPROXY_POSTGRES_DSN)
//	edgectl sign -url https://dl.example.com/download/10086 -ttl 1h [-ip 203.0.113.7] [-method GET]
//	edgectl sign -upload -url https://dl.example.com/uploads/ -bucket up (-key K | -prefix in/) [-file-id ID] [-max-size N] -ttl 1h
//	edgectl purge -bucket dl (-key iso/a.iso | -prefix iso/)
//	edgectl stats [-hot N | -file ID | -task ID]
//	edgectl get URL [-o FILE] [-c N] [-sha256 HEX]
//	edgectl put FILE [-url ENDPOINT] [-c N] [-filename F] [-type T]
//
// Global flags (before the command): -addr, the admin API's base URL
// (default $EDGECTL_ADDR, else http://127.0.0.1:9090), and -timeout. The
// admin key comes from $EDGECTL_ADMIN_KEY (else $EDGEPROXY_ADMIN_KEY), never
// from a flag, so it stays out of shell history and process listings; the
// same holds for the S3 credentials of file put and the signing keys of sign.
//
// Results are JSON on stdout (token create prints {"token","expires_at","url"};
// sign prints the URL alone, for use in scripts). "edgectl help", -h and
// --help, on their own or after a command, print usage on stdout and exit 0.
// Other exit codes: 1 the API or the store refused or could not be reached
// (its error on stderr), 2 invalid command line or environment; get and
// put add 3 (checksum mismatch), 4 (object changed too often) and 5 (local
// file error), see get.go.
//
// The admin API edgectl speaks (Authorization: Bearer KEY, JSON bodies,
// snake_case), served by package admin:
//
//	POST   /v1/purge          {bucket, key | prefix} -> 200 {purged}
//	GET    /v1/stats          -> 200 {...}
//	POST   /v1/tokens         {file_id,user_id,allowed_ip[],max_uses,rate,ttl:"1h30m0s"} -> 201 {token,expires_at,url}
//	DELETE /v1/tokens/{token} -> 204; 404 token_not_found
//	POST   /v1/upload-tokens  {bucket,key|prefix,file_id,max_size,ttl} -> 201 {token,expires_at,endpoint}
//	PUT    /v1/files/{id}     {bucket,key,filename,sha256,size,content_type} -> 204
//	GET    /v1/files/{id}     -> 200 {id,bucket,key,...}; 404 not_found
//	POST   /v1/files          {bucket,key,...} -> 201 {record}; 200 {record} when its sha256 is known
//	GET    /v1/files?after=&limit= | ?sha256= -> 200 [{record}...]
//	DELETE /v1/files/{id}     -> 204; 404 not_found
//	errors                    -> non-2xx with {"code":..,"message":..}
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	// An interrupt cancels an upload in progress, which aborts its
	// multipart upload instead of leaving parts behind in the bucket.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: edgectl [-addr URL] [-timeout D] <command> [flags]

commands:
  token create -file ID [-user ID] [-ip LIST] [-max-uses N] [-rate BYTES_PER_S] [-ttl D]
  token create -upload -bucket B (-key K | -prefix P) [-file ID] [-max-size N] [-ttl D]
  token revoke TOKEN
  file put -id ID -bucket B -src PATH [-key K] [-filename F] [-content-type T] [-s3-endpoint HOST:PORT] [-s3-secure]
  file put -id ID -bucket B -key K [-size N] [-sha256 HEX] [-filename F] [-content-type T]
  file put -bucket B -src PATH [...]        (no -id: the PostgreSQL catalog assigns it; known content is not re-uploaded)
  file get ID
  file list [-after ID] [-limit N]
  file rm ID
  db migrate
  sign -url URL -ttl D [-ip IP] [-method M]
  sign -upload -url URL -bucket B (-key K | -prefix P) [-file-id ID] [-max-size N] -ttl D [-ip IP]
  purge -bucket B (-key K | -prefix P)
  stats [-hot N | -file ID | -task ID]
  get URL [-o FILE] [-c N] [-sha256 HEX]
  put FILE [-url ENDPOINT] [-c N] [-filename F] [-type T]
"edgectl <command> -h" describes a command.

global flags:
  -addr URL    admin API base URL (default $EDGECTL_ADDR, else http://127.0.0.1:9090)
  -timeout D   time limit of each admin API call (default 10s) and, when given, of an upload

environment:
  EDGECTL_ADMIN_KEY (else EDGEPROXY_ADMIN_KEY)   admin API key
  EDGECTL_S3_ENDPOINT, EDGECTL_S3_ACCESS_KEY, EDGECTL_S3_SECRET_KEY   origin for file put -src
  EDGECTL_SIGN_KEYS (kid:secret,...), EDGECTL_SIGN_KID   keys for sign
  EDGECTL_POSTGRES_DSN (else EDGEPROXY_POSTGRES_DSN)   database for db migrate
  EDGECTL_TOKEN   download token of get (and upload token of put)
  EDGECTL_UPLOAD_URL, EDGECTL_UPLOAD_TOKEN   tus endpoint and upload token of put

exit status: 0 success, 1 the API, the store or the network failed, 2 invalid command line;
get and put also: 3 checksum mismatch (get), 4 object changed too often (get), 5 local file error`

// helpRequested is returned when the operator asked for usage; text goes to
// stdout and the exit status is 0, because asking for help is not a mistake.
type helpRequested struct{ text string }

func (helpRequested) Error() string { return "help requested" }

// usageError marks failures that exit with code 2. usage, when not empty, is
// the usage of the command that failed; else the global usage is shown.
type usageError struct {
	err   error
	usage string
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{err: fmt.Errorf(format, a...)} }

func run(args, environ []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, environ, stdout, stderr)
}

func runContext(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	err := runErr(ctx, args, environ, stdout, stderr)
	var (
		hr helpRequested
		ue usageError
		xe exitError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &hr):
		fmt.Fprintln(stdout, hr.text)
		return 0
	case errors.As(err, &ue):
		u := ue.usage
		if u == "" {
			u = usage
		}
		fmt.Fprintf(stderr, "edgectl: %v\n%s\n", err, u)
		return 2
	case errors.As(err, &xe):
		fmt.Fprintf(stderr, "edgectl: %v\n", err)
		return xe.code
	default:
		fmt.Fprintf(stderr, "edgectl: %v\n", err)
		return 1
	}
}

func getenv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// cli is what every command gets: the admin API client and the process's
// environment and output.
type cli struct {
	api     *client
	environ []string
	stdout  io.Writer
	stderr  io.Writer // progress of get and put
	// uploadTimeout bounds an upload when -timeout was given; zero: none,
	// since a large file can take far longer than an API call.
	uploadTimeout time.Duration
}

func runErr(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("edgectl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "", "admin API base URL")
	timeout := fs.Duration("timeout", 10*time.Second, "time limit of each admin API call")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return helpRequested{usage}
		}
		return usageError{err: err}
	}
	if *timeout <= 0 {
		return usagef("-timeout must be positive")
	}
	x := &cli{environ: environ, stdout: stdout, stderr: stderr}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "timeout" {
			x.uploadTimeout = *timeout
		}
	})
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("missing command")
	}
	if rest[0] == "help" {
		if len(rest) == 1 {
			return helpRequested{usage}
		}
		rest = append(append([]string(nil), rest[1:]...), "-h") // "help file put" is "file put -h"
	}
	if rest[0] != "sign" && rest[0] != "db" { // sign and db need no API
		base := *addr
		if base == "" {
			base = getenv(environ, "EDGECTL_ADDR")
		}
		if base == "" {
			base = "http://127.0.0.1:9090"
		}
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("-addr %q: want http(s)://host[:port]", base)
		}
		x.api = &client{base: strings.TrimRight(base, "/"), credential: adminKey(environ),
			http: &http.Client{Timeout: *timeout}}
	}

	switch rest[0] {
	case "purge":
		return purge(ctx, x, rest[1:])
	case "stats":
		return stats(ctx, x, rest[1:])
	case "sign":
		return sign(x, rest[1:], time.Now())
	case "get":
		return get(ctx, x, rest[1:])
	case "put":
		return put(ctx, x, rest[1:])
	case "token", "file", "db":
	default:
		return usagef("unknown command %q", rest[0])
	}
	if len(rest) < 2 || isHelpArg(rest[1]) {
		if len(rest) >= 2 {
			return helpRequested{usage}
		}
		return usagef("%s: missing subcommand", rest[0])
	}
	switch rest[0] + " " + rest[1] {
	case "token create":
		return tokenCreate(ctx, x, rest[2:])
	case "token revoke":
		return tokenRevoke(ctx, x, rest[2:])
	case "file put":
		return filePut(ctx, x, rest[2:])
	case "file get":
		return fileGet(ctx, x, rest[2:])
	case "file list":
		return fileList(ctx, x, rest[2:])
	case "file rm":
		return fileRm(ctx, x, rest[2:])
	case "db migrate":
		return dbMigrate(ctx, x, rest[2:])
	}
	return usagef("unknown command %q", strings.Join(rest[:2], " "))
}

func adminKey(environ []string) string {
	if k := getenv(environ, "EDGECTL_ADMIN_KEY"); k != "" {
		return k
	}
	return getenv(environ, "EDGEPROXY_ADMIN_KEY")
}

// command is one subcommand's flag set and usage text.
type command struct {
	name     string // "token create"
	synopsis string // the arguments after the name
	about    string // what it does, one or a few lines
	fs       *flag.FlagSet
}

func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &command{name: name, synopsis: synopsis, about: about, fs: fs}
}

// usage is the command's help text: synopsis, description and flags.
func (c *command) usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: edgectl %s %s\n\n%s\n", c.name, c.synopsis, c.about)
	n := 0
	c.fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nflags:\n")
		c.fs.SetOutput(&b)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
	return strings.TrimRight(b.String(), "\n")
}

// parse parses flags; -h, -help and --help become helpRequested.
func (c *command) parse(args []string) error {
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return helpRequested{c.usage()}
	}
	if err != nil {
		return usageError{err: fmt.Errorf("%s: %w", c.name, err), usage: c.usage()}
	}
	if c.fs.NArg() != 0 {
		return c.usagef("unexpected argument %q", c.fs.Arg(0))
	}
	return nil
}

// oneArg takes the single positional argument of commands such as
// "token revoke TOKEN". It does not go through the flag package, because a
// token may begin with '-'; "--" is accepted before the argument.
func (c *command) oneArg(args []string, what string) (string, error) {
	if len(args) == 1 && isHelpArg(args[0]) {
		return "", helpRequested{c.usage()}
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) != 1 || args[0] == "" {
		return "", c.usagef("takes one %s", what)
	}
	return args[0], nil
}

func (c *command) usagef(format string, a ...any) error {
	return usageError{err: fmt.Errorf(c.name+": "+format, a...), usage: c.usage()}
}

func isHelpArg(s string) bool {
	switch s {
	case "-h", "-help", "--h", "--help":
		return true
	}
	return false
}
