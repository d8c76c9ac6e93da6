package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DovecotServer is a throwaway Dovecot IMAP server on a loopback port,
// with one user and plain-text authentication (no TLS).
type DovecotServer struct {
	Host     string
	Port     int
	Addr     string // host:port
	User     string
	Password string
	Dir      string // config, state and mail of the instance
}

// Dovecot starts a Dovecot instance for the test (the dovecot binary of
// Debian's dovecot-imapd) with a temporary config and user, and stops it
// at cleanup. Without the binary the test is skipped with a visible
// message, or fails when services are required (Required).
func Dovecot(t testing.TB) *DovecotServer {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		if Required() {
			t.Fatalf("dovecot is required (CI=true or SWITCHBOARD_REQUIRE_SERVICES=1) but not installed: %v", err)
		}
		t.Skipf("SKIP: dovecot not installed (%v); apt-get install dovecot-imapd to run this test", err)
	}
	var lastErr error
	for range 3 { // a free port can be taken between choosing and binding
		d, err := startDovecot(t, bin)
		if err == nil {
			return d
		}
		lastErr = err
	}
	t.Fatalf("start dovecot: %v", lastErr)
	return nil
}

func startDovecot(t testing.TB, bin string) (*DovecotServer, error) {
	// Not t.TempDir: Dovecot's login processes run as unprivileged users
	// and must reach the directory, so it lives directly under the
	// system temp dir with mode 755.
	dir, err := os.MkdirTemp("", "sbdovecot-")
	if err != nil {
		return nil, err
	}
	cleanupDir := func() { os.RemoveAll(dir) }
	if err := os.Chmod(dir, 0o755); err != nil {
		cleanupDir()
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		cleanupDir()
		return nil, err
	}
	d := &DovecotServer{Host: "127.0.0.1", Port: port, User: "support", Password: Name("pw"), Dir: dir}
	d.Addr = net.JoinHostPort(d.Host, strconv.Itoa(port))

	uid, gid, internalUser, loginUser := "65534", "65534", "dovecot", "dovenull"
	if os.Geteuid() != 0 {
		// Unprivileged: everything runs as the current user.
		u, err := user.Current()
		if err != nil {
			cleanupDir()
			return nil, err
		}
		uid, gid, internalUser, loginUser = u.Uid, u.Gid, u.Username, u.Username
	}
	mail := filepath.Join(dir, "mail")
	run := filepath.Join(dir, "run")
	for _, p := range []string{mail, run} {
		if err := os.Mkdir(p, 0o755); err != nil {
			cleanupDir()
			return nil, err
		}
	}
	if os.Geteuid() == 0 {
		n, _ := strconv.Atoi(uid)
		if err := os.Chown(mail, n, n); err != nil {
			cleanupDir()
			return nil, err
		}
	}
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(d.User+":{PLAIN}"+d.Password+"\n"), 0o644); err != nil {
		cleanupDir()
		return nil, err
	}
	conf := fmt.Sprintf(`protocols = imap
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/run
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[1]s/mail/%%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/users
}
userdb {
  driver = static
  args = uid=%[3]s gid=%[4]s home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
default_internal_user = %[5]s
default_login_user = %[6]s
first_valid_uid = 1
`, dir, port, uid, gid, internalUser, loginUser)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		cleanupDir()
		return nil, err
	}

	cmd := exec.Command(bin, "-F", "-c", confPath)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		cleanupDir()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		cleanupDir()
	}
	if err := waitDovecot(d.Addr, exited); err != nil {
		logText, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		stop()
		return nil, fmt.Errorf("%w; dovecot.log:\n%s", err, logText)
	}
	t.Cleanup(stop)
	return d, nil
}

// waitDovecot waits until the server greets with its capabilities (the
// first greeting may only say it waits for its auth process).
func waitDovecot(addr string, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(ctx, addr) {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("dovecot exited at start: %v", err)
		case <-ctx.Done():
			return errors.New("dovecot did not become ready")
		case <-tick.C:
		}
	}
}

func ready(ctx context.Context, addr string) bool {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	for range 3 {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.Contains(line, "CAPABILITY") {
			_, _ = c.Write([]byte("x LOGOUT\r\n"))
			return true
		}
	}
	return false
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
