package origin

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// STSConfig asks the store for temporary credentials (AssumeRole, as MinIO
// and AWS STS implement it) instead of signing with long-lived keys: a
// leaked edge then leaks keys that die within Duration.
type STSConfig struct {
	// Enabled switches AssumeRole on. The long-lived pair (access_key,
	// environment or files) signs only the AssumeRole calls. Default false.
	Enabled bool `yaml:"enabled"`
	// Endpoint is the STS URL (scheme://host:port). Default: the origin's
	// endpoints themselves, tried in turn (MinIO serves STS on its S3 port),
	// so that renewal survives a dead node as requests do.
	Endpoint string `yaml:"endpoint"`
	// Duration is the credentials' requested lifetime, 15m to 12h. They
	// are renewed when 80% of it has passed (minio-go's expiry window), so
	// a renewal that fails still leaves a fifth of it to retry in.
	// Default 1h.
	Duration time.Duration `yaml:"duration"`
	// Policy, optional, is an IAM policy document (JSON) that narrows the
	// temporary credentials below the user's own policy.
	Policy string `yaml:"policy"`
	// RoleARN and RoleSessionName are for AWS STS; MinIO ignores them.
	RoleARN         string `yaml:"role_arn"`
	RoleSessionName string `yaml:"role_session_name"`
}

// Limits of STSConfig.Duration (the AssumeRole API's own).
const (
	DefaultSTSDuration = time.Hour
	MinSTSDuration     = 15 * time.Minute
	MaxSTSDuration     = 12 * time.Hour
)

// baseProviders are the sources of a long-lived pair, in lookup order.
func baseProviders(cfg S3Config) []credentials.Provider {
	var ps []credentials.Provider
	if cfg.AccessKey != "" {
		ps = append(ps, &credentials.Static{Value: credentials.Value{
			AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey, SignerType: credentials.SignatureV4,
		}})
	}
	ps = append(ps, pairOnly{&credentials.EnvAWS{}}, pairOnly{&credentials.EnvMinio{}})
	if cfg.CredentialsFile != "" {
		ps = append(ps, pairOnly{&credentials.FileAWSCredentials{Filename: cfg.CredentialsFile, Profile: cfg.Profile}})
	}
	if cfg.MCConfigFile != "" {
		alias := cfg.MCAlias
		if alias == "" {
			alias = "s3"
		}
		ps = append(ps, &credentials.FileMinioClient{Filename: cfg.MCConfigFile, Alias: alias})
	}
	return ps
}

// pairOnly passes on a provider's credentials only when both halves are
// set: a lone AWS_ACCESS_KEY_ID must not sign with an empty secret (and
// hide the next source in the chain), it reads as nothing.
type pairOnly struct{ credentials.Provider }

func (p pairOnly) Retrieve() (credentials.Value, error) {
	return p.RetrieveWithCredContext(nil)
}

func (p pairOnly) RetrieveWithCredContext(cc *credentials.CredContext) (credentials.Value, error) {
	var (
		v   credentials.Value
		err error
	)
	if cc == nil {
		v, err = p.Provider.Retrieve()
	} else {
		v, err = p.Provider.RetrieveWithCredContext(cc)
	}
	if err != nil || v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return credentials.Value{}, err
	}
	return v, nil
}

// newCredentials builds the credentials requests are signed with, and
// whether they are anonymous. It makes no network request: STS
// credentials are fetched on first use. now is the clock of the STS
// expiry logic (time.Now outside tests).
func newCredentials(cfg S3Config, client *http.Client, now func() time.Time) (*credentials.Credentials, bool, error) {
	base := credentials.NewChainCredentials(baseProviders(cfg))
	if !cfg.STS.Enabled {
		v, err := base.Get()
		if err != nil {
			return nil, false, fmt.Errorf("origin: credentials: %w", err)
		}
		return base, v.AccessKeyID == "", nil
	}
	v, err := base.Get()
	if err != nil {
		return nil, false, fmt.Errorf("origin: credentials: %w", err)
	}
	if v.AccessKeyID == "" {
		return nil, false, errors.New("origin: sts: no access key to call AssumeRole with (set access_key, the environment or a credentials file)")
	}
	var urls []string
	if cfg.STS.Endpoint != "" {
		urls = []string{cfg.STS.Endpoint}
	} else {
		scheme := "http://"
		if cfg.Secure {
			scheme = "https://"
		}
		for _, e := range cfg.Endpoints {
			urls = append(urls, scheme+e)
		}
	}
	opts := credentials.STSAssumeRoleOptions{
		AccessKey:       v.AccessKeyID,
		SecretKey:       v.SecretAccessKey,
		SessionToken:    v.SessionToken,
		Policy:          cfg.STS.Policy,
		Location:        cfg.Region,
		DurationSeconds: int(cfg.STS.Duration / time.Second),
		RoleARN:         cfg.STS.RoleARN,
		RoleSessionName: cfg.STS.RoleSessionName,
	}
	fp := &failoverSTS{}
	for _, u := range urls {
		fp.ps = append(fp.ps, &credentials.STSAssumeRole{
			Expiry:      credentials.Expiry{CurrentTime: now},
			Client:      client,
			STSEndpoint: u,
			Options:     opts,
		})
	}
	return credentials.New(fp), false, nil
}

// normalizeSTS fills STS defaults and checks the duration.
func (c *STSConfig) normalize() error {
	if !c.Enabled {
		return nil
	}
	if c.Duration == 0 {
		c.Duration = DefaultSTSDuration
	}
	if c.Duration < MinSTSDuration || c.Duration > MaxSTSDuration {
		return fmt.Errorf("origin: sts.duration: %v is outside %v..%v", c.Duration, MinSTSDuration, MaxSTSDuration)
	}
	return nil
}

// failoverSTS asks each STS endpoint in turn, starting with the one that
// answered last, so that renewing credentials does not depend on one node.
type failoverSTS struct {
	ps  []*credentials.STSAssumeRole
	cur int
}

func (f *failoverSTS) Retrieve() (credentials.Value, error) {
	return f.RetrieveWithCredContext(nil)
}

// RetrieveWithCredContext is called by credentials.Credentials under its
// lock, so f needs none of its own.
func (f *failoverSTS) RetrieveWithCredContext(cc *credentials.CredContext) (credentials.Value, error) {
	var errs []error
	for i := range f.ps {
		j := (f.cur + i) % len(f.ps)
		var (
			v   credentials.Value
			err error
		)
		if cc == nil {
			v, err = f.ps[j].Retrieve()
		} else {
			v, err = f.ps[j].RetrieveWithCredContext(cc)
		}
		if err == nil {
			f.cur = j
			return v, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", f.ps[j].STSEndpoint, err))
	}
	return credentials.Value{}, fmt.Errorf("origin: sts: assume role: %w", errors.Join(errs...))
}

// IsExpired reports whether the credentials last fetched are due for
// renewal (80% of their lifetime passed, by minio-go's Expiry).
func (f *failoverSTS) IsExpired() bool {
	return f.ps[f.cur].IsExpired()
}
