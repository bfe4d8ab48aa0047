package testutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/embed"
)

type testCerts struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	peerCert, peerKey                                string // for both ends of member-to-member TLS
}

// writeTestCerts writes a throwaway CA, a server certificate (valid for
// localhost, 127.0.0.1 and the socket names) and a client certificate.
func writeTestCerts(dir string) (testCerts, error) {
	return writeTestCertsFor(dir, []string{"localhost", "client.sock", "client.sock:0"})
}

// writeTestCertsFor is writeTestCerts with the certificates' DNS names.
func writeTestCertsFor(dir string, dnsNames []string) (testCerts, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "calico test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return testCerts{}, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	c := testCerts{ca: filepath.Join(dir, "ca.pem")}
	if err := writePEM(c.ca, "CERTIFICATE", caDER); err != nil {
		return c, err
	}
	issue := func(name string, serial int64, usage ...x509.ExtKeyUsage) (string, string, error) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			DNSNames:    dnsNames,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return "", "", err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return "", "", err
		}
		cert, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if err := writePEM(cert, "CERTIFICATE", der); err != nil {
			return "", "", err
		}
		return cert, keyFile, writePEM(keyFile, "EC PRIVATE KEY", kb)
	}
	if c.serverCert, c.serverKey, err = issue("server", 2, x509.ExtKeyUsageServerAuth); err != nil {
		return c, err
	}
	if c.clientCert, c.clientKey, err = issue("client", 3, x509.ExtKeyUsageClientAuth); err != nil {
		return c, err
	}
	c.peerCert, c.peerKey, err = issue("peer", 4, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	return c, err
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// enableAuth creates the root user and turns authentication on, through the
// server's own API (no client connection needed).
func enableAuth(s *embed.Etcd, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as := s.Server
	if _, err := as.UserAdd(ctx, &pb.AuthUserAddRequest{Name: "root", Password: password}); err != nil {
		return err
	}
	if _, err := as.UserGrantRole(ctx, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"}); err != nil {
		return err
	}
	_, err := as.AuthEnable(ctx, &pb.AuthEnableRequest{})
	return err
}
