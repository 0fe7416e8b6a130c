// Command wif-go-client is Google's Go auth libraries (golang.org/x/oauth2/google and
// cloud.google.com/go/compute/metadata, as Debian packages them), unmodified, against wif:
//
//	wif-go-client metadata
//	    GCE_METADATA_HOST names the metadata server (wif-get --metadata-server). Reads the
//	    project, account and scopes with the metadata package, a token through
//	    google.ComputeTokenSource, and the same through Application Default Credentials.
//	wif-go-client external-account -config FILE -emulator HOST:PORT -ca FILE [-server-name NAME]
//	    Exchanges and impersonates through google.CredentialsFromJSON with the credential
//	    configuration FILE (wif-sts --print-credential-config), with the Google hosts it
//	    names routed to wif-emulate's TLS listener.
//
// Prints one JSON object on stdout (exit 0), or {"error": ...} (exit 1; 2 for usage). Tokens
// are never printed, only their SHA-256 and length, for the test to compare.
//
// Built offline in GOPATH mode by tests/common/interop.rs:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o wif-go-client .
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"cloud.google.com/go/compute/metadata"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

const cloudPlatform = "https://www.googleapis.com/auth/cloud-platform"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var out map[string]interface{}
	var err error
	switch os.Args[1] {
	case "metadata":
		out, err = fromMetadata(context.Background())
	case "external-account":
		out, err = externalAccount(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		emit(map[string]interface{}{"error": err.Error()})
		os.Exit(1)
	}
	emit(out)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: wif-go-client metadata | external-account -config FILE -emulator HOST:PORT -ca FILE [-server-name NAME]")
	os.Exit(2)
}

func emit(v map[string]interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wif-go-client: encoding the answer:", err)
		os.Exit(1)
	}
	fmt.Println(string(b))
}

// describe is what may be printed of a token: never the token itself.
func describe(t *oauth2.Token) map[string]interface{} {
	sum := sha256.Sum256([]byte(t.AccessToken))
	return map[string]interface{}{
		"token_sha256": hex.EncodeToString(sum[:]),
		"token_length": len(t.AccessToken),
		"token_type":   t.Type(),
		"expiry":       t.Expiry.Unix(),
		"valid":        t.Valid(),
	}
}

func fromMetadata(ctx context.Context) (map[string]interface{}, error) {
	if os.Getenv("GCE_METADATA_HOST") == "" {
		return nil, fmt.Errorf("GCE_METADATA_HOST is not set: name the metadata server (wif-get --metadata-server's address)")
	}
	out := map[string]interface{}{"on_gce": metadata.OnGCE()}
	var err error
	if out["project_id"], err = metadata.ProjectID(); err != nil {
		return nil, fmt.Errorf("metadata.ProjectID: %w", err)
	}
	if out["numeric_project_id"], err = metadata.NumericProjectID(); err != nil {
		return nil, fmt.Errorf("metadata.NumericProjectID: %w", err)
	}
	if out["email"], err = metadata.Email("default"); err != nil {
		return nil, fmt.Errorf("metadata.Email: %w", err)
	}
	if out["scopes"], err = metadata.Scopes("default"); err != nil {
		return nil, fmt.Errorf("metadata.Scopes: %w", err)
	}
	tok, err := google.ComputeTokenSource("", cloudPlatform).Token()
	if err != nil {
		return nil, fmt.Errorf("google.ComputeTokenSource: %w", err)
	}
	out["compute"] = describe(tok)
	// What most programs do: Application Default Credentials, which find the metadata
	// server when no credentials file is set.
	creds, err := google.FindDefaultCredentials(ctx, cloudPlatform)
	if err != nil {
		return nil, fmt.Errorf("google.FindDefaultCredentials: %w", err)
	}
	tok, err = creds.TokenSource.Token()
	if err != nil {
		return nil, fmt.Errorf("the default credentials' token: %w", err)
	}
	out["default"] = describe(tok)
	out["default_project_id"] = creds.ProjectID
	return out, nil
}

func externalAccount(args []string) (map[string]interface{}, error) {
	fs := flag.NewFlagSet("external-account", flag.ExitOnError)
	config := fs.String("config", "", "the credential configuration (type external_account)")
	emulator := fs.String("emulator", "", "wif-emulate's TLS address, HOST:PORT")
	ca := fs.String("ca", "", "the CA certificates (PEM) that issued the emulator's certificate")
	serverName := fs.String("server-name", "localhost", "a name the emulator's certificate holds")
	if err := fs.Parse(args); err != nil || *config == "" || *emulator == "" || *ca == "" || fs.NArg() != 0 {
		usage()
	}
	data, err := os.ReadFile(*config)
	if err != nil {
		return nil, err
	}
	client, err := routedClient(*emulator, *ca, *serverName)
	if err != nil {
		return nil, err
	}
	// x/oauth2 takes its HTTP client from the context (oauth2.HTTPClient).
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	creds, err := google.CredentialsFromJSON(ctx, data, cloudPlatform)
	if err != nil {
		return nil, fmt.Errorf("google.CredentialsFromJSON: %w", err)
	}
	tok, err := creds.TokenSource.Token()
	if err != nil {
		return nil, err
	}
	return describe(tok), nil
}

// routedClient is an HTTP client for which the Google hosts a credential configuration names
// are the emulator: what a hosts-file entry pointing them at 127.0.0.1 would do. x/oauth2
// 0.3.0 accepts only https://*.googleapis.com token and impersonation URLs (see
// golang.org/x/oauth2/google/internal/externalaccount/basecredentials.go), so the
// configuration keeps the real URLs and only the connection is redirected. The emulator's
// certificate is for serverName (localhost), trusted through caFile alone; the request's
// Host header stays the Google host. Any other host is refused: the test never goes out.
func routedClient(emulator, caFile, serverName string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	routes := map[string]bool{"sts.googleapis.com:443": true, "iamcredentials.googleapis.com:443": true}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !routes[addr] {
				return nil, fmt.Errorf("refusing to connect to %s: only the Google hosts wif-emulate plays are routed", addr)
			}
			return dialer.DialContext(ctx, network, emulator)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}, nil
}
