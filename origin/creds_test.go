package origin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"

	"github.com/edgeproxy/edgeproxy/internal/fakeclock"
	"github.com/edgeproxy/edgeproxy/internal/testenv"
)

// clearCredEnv empties every variable the credential chain reads.
func clearCredEnv(t *testing.T) {
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
		"MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"} {
		t.Setenv(v, "")
	}
}

// The chain takes the first complete pair: config, AWS environment, MinIO
// environment, AWS credentials file, mc config file; else anonymous.
func TestCredentialChain(t *testing.T) {
	clearCredEnv(t)
	dir := t.TempDir()
	awsFile := filepath.Join(dir, "credentials")
	os.WriteFile(awsFile, []byte("[default]\naws_access_key_id = file-default\naws_secret_access_key = s1\n\n"+
		"[edge]\naws_access_key_id = file-edge\naws_secret_access_key = s2\n"), 0o600)
	mcFile := filepath.Join(dir, "config.json")
	os.WriteFile(mcFile, []byte(`{"version":"10","aliases":{"s3":{"url":"http://127.0.0.1:9000","accessKey":"mc-s3","secretKey":"s3","api":"S3v4","path":"auto"},`+
		`"edge":{"url":"http://127.0.0.1:9000","accessKey":"mc-edge","secretKey":"s4","api":"S3v4","path":"auto"}}}`), 0o600)

	key := func(cfg S3Config) string {
		t.Helper()
		cfg.Endpoint = "127.0.0.1:9"
		s, err := NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		v, err := s.pool.eps[0].core.GetCreds()
		if err != nil {
			t.Fatal(err)
		}
		if s.anonymous != (v.AccessKeyID == "") {
			t.Errorf("anonymous %v with key %q", s.anonymous, v.AccessKeyID)
		}
		return v.AccessKeyID
	}
	files := S3Config{CredentialsFile: awsFile, MCConfigFile: mcFile}
	steps := []struct {
		name string
		cfg  S3Config
		env  [2]string // variables set before this step, kept for the next
		want string
	}{
		{"nothing", S3Config{}, [2]string{}, ""},
		{"mc file, alias s3", S3Config{MCConfigFile: mcFile}, [2]string{}, "mc-s3"},
		{"mc file, alias edge", S3Config{MCConfigFile: mcFile, MCAlias: "edge"}, [2]string{}, "mc-edge"},
		{"aws file before mc file", files, [2]string{}, "file-default"},
		{"aws file profile", S3Config{CredentialsFile: awsFile, Profile: "edge"}, [2]string{}, "file-edge"},
		{"lone aws key id ignored", files, [2]string{"AWS_ACCESS_KEY_ID", "lone"}, "file-default"},
		{"minio env before files", files, [2]string{"MINIO_ACCESS_KEY", "env-minio"}, "env-minio"},
		{"aws env before minio env", files, [2]string{"AWS_ACCESS_KEY_ID", "env-aws"}, "env-aws"},
		{"config before env", S3Config{AccessKey: "cfg", SecretKey: "cfg-secret"}, [2]string{}, "cfg"},
	}
	for _, st := range steps {
		if st.env[0] == "AWS_ACCESS_KEY_ID" && st.env[1] == "lone" {
			t.Setenv(st.env[0], st.env[1])
		} else if st.env[0] != "" {
			t.Setenv(st.env[0], st.env[1])
			t.Setenv(map[string]string{"MINIO_ACCESS_KEY": "MINIO_SECRET_KEY", "AWS_ACCESS_KEY_ID": "AWS_SECRET_ACCESS_KEY"}[st.env[0]], "secret")
		}
		if got := key(st.cfg); got != st.want {
			t.Errorf("%s: signed with %q, want %q", st.name, got, st.want)
		}
	}
}

// STS AssumeRole against the real MinIO, for a user created with a policy
// that allows reading one bucket: requests are signed with temporary
// credentials under that policy, and the credentials are fetched again
// once 80% of their lifetime has passed (on a fake clock), not before.
func TestSTSAssumeRole(t *testing.T) {
	clearCredEnv(t)
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	other := srv.NewBucket(t)
	putObject(t, srv.Client(t), bucket, "k", []byte("temporary"), "text/plain")
	putObject(t, srv.Client(t), other, "k", []byte("forbidden"), "text/plain")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm, err := madmin.New(srv.Endpoint, srv.AccessKey, srv.SecretKey, false)
	if err != nil {
		t.Fatal(err)
	}
	user, secret, policy := "edge-"+bucket, "edge-secret-"+bucket, "edge-read-"+bucket
	doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, bucket)
	if err := adm.AddCannedPolicy(ctx, policy, []byte(doc)); err != nil {
		t.Fatalf("add policy: %v", err)
	}
	if err := adm.AddUser(ctx, user, secret); err != nil {
		t.Fatalf("add user: %v", err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policy}, User: user}); err != nil {
		t.Fatalf("attach policy: %v", err)
	}

	clk := fakeclock.At(time.Now())
	s, err := newS3(S3Config{
		Endpoint: srv.Endpoint, AccessKey: user, SecretKey: secret,
		STS: STSConfig{Enabled: true, Duration: MinSTSDuration},
	}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	creds := func() string {
		t.Helper()
		v, err := s.pool.eps[0].core.GetCreds()
		if err != nil {
			t.Fatal(err)
		}
		if v.SessionToken == "" || v.AccessKeyID == user {
			t.Fatalf("signing with %q (session token %v), want temporary credentials", v.AccessKeyID, v.SessionToken != "")
		}
		return v.AccessKeyID
	}
	read := func() {
		t.Helper()
		if got := string(readRange(t, s, bucket, "k", "", 0, 9)); got != "temporary" {
			t.Fatalf("read %q", got)
		}
	}
	read()
	first := creds()
	if _, err := s.Stat(ctx, other, "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Stat outside the user's policy = %v, want ErrUnavailable (access denied)", err)
	}
	// 11 of 15 minutes: still before the renewal point (12 minutes).
	clk.Advance(11 * time.Minute)
	read()
	if got := creds(); got != first {
		t.Fatalf("credentials renewed after 11 of 15 minutes: %s -> %s", first, got)
	}
	clk.Advance(2 * time.Minute)
	read()
	if got := creds(); got == first {
		t.Fatalf("credentials not renewed after 13 of 15 minutes")
	}
}

// STS with no long-lived pair to call AssumeRole with is a config error.
func TestSTSNeedsKeys(t *testing.T) {
	clearCredEnv(t)
	_, err := NewS3(S3Config{Endpoint: "127.0.0.1:9", STS: STSConfig{Enabled: true}})
	if err == nil || err.Error() != "origin: sts: no access key to call AssumeRole with (set access_key, the environment or a credentials file)" {
		t.Fatalf("NewS3 = %v", err)
	}
}
