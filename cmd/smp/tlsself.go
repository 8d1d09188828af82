package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"smp/internal/sysfile"
	"smp/keys"
)

// storeKeys are the unlocked keys of an encrypted store, for what serve
// keeps sealed in it.
type storeKeys struct {
	kr      *keys.Keyring
	storeID string
}

// tlsKeyPurpose names the sealed TLS key (keys.SealSecret).
const tlsKeyPurpose = keys.PurposeTLSKey

// selfSignedCert returns the PEM certificate and private key kept in
// DIR/tls, creating them the first time: the same certificate (and
// fingerprint) on every start. The key is DIR/tls/key.pem in an
// unencrypted store; in an encrypted one (sk set) it is DIR/tls/key.sealed,
// sealed with the store's master key, so a copy of the store's disk
// cannot impersonate the SMP. A key.pem an encrypted store still holds in
// clear is sealed and removed.
func selfSignedCert(dir string, extraHosts []string, sk *storeKeys) ([]byte, []byte, error) {
	tdir := filepath.Join(dir, "tls")
	certPath, plainKey, sealedKey := filepath.Join(tdir, "cert.pem"), filepath.Join(tdir, "key.pem"), filepath.Join(tdir, "key.sealed")
	certPEM, err := os.ReadFile(certPath)
	switch {
	case err == nil && sk == nil:
		keyPEM, err := os.ReadFile(plainKey)
		return certPEM, keyPEM, err
	case err == nil:
		keyPEM, err := loadSealedKey(sk, plainKey, sealedKey)
		return certPEM, keyPEM, err
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, err
	}
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return nil, nil, err
	}
	certPEM, keyPEM, err := newSelfSigned(extraHosts)
	if err != nil {
		return nil, nil, err
	}
	// Key first: a crash between the two leaves no certificate, so the
	// next start makes a fresh pair rather than a mismatched one.
	keyPath, keyFile := plainKey, keyPEM
	if sk != nil {
		if keyFile, err = keys.SealSecret(sk.kr, sk.storeID, tlsKeyPurpose, keyPEM); err != nil {
			return nil, nil, err
		}
		keyPath = sealedKey
	}
	if err := sysfile.WriteFile(keyPath, keyFile, 0o600); err != nil {
		return nil, nil, err
	}
	if err := sysfile.WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// loadSealedKey opens the sealed TLS key of an encrypted store, first
// sealing a key.pem left in clear.
func loadSealedKey(sk *storeKeys, plainKey, sealedKey string) ([]byte, error) {
	if keyPEM, err := os.ReadFile(plainKey); err == nil {
		b, err := keys.SealSecret(sk.kr, sk.storeID, tlsKeyPurpose, keyPEM)
		if err != nil {
			return nil, err
		}
		if err := sysfile.WriteFile(sealedKey, b, 0o600); err != nil {
			return nil, err
		}
		if err := os.Remove(plainKey); err != nil {
			return nil, err
		}
		return keyPEM, nil
	}
	b, err := os.ReadFile(sealedKey)
	if err != nil {
		return nil, fmt.Errorf("TLS key of the self-signed certificate: %w (remove %s to make a new certificate; clients then need its new fingerprint)", err, filepath.Dir(sealedKey))
	}
	keyPEM, err := keys.OpenSecret(sk.kr, sk.storeID, tlsKeyPurpose, b)
	if err != nil {
		return nil, fmt.Errorf("TLS key %s: %w (remove %s to make a new certificate; clients then need its new fingerprint)", sealedKey, err, filepath.Dir(sealedKey))
	}
	return keyPEM, nil
}

// newSelfSigned makes a P-256 key and a ten-year self-signed certificate
// for localhost, this host and extraHosts.
func newSelfSigned(extraHosts []string) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "smp state migration point"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	for _, h := range extraHosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
