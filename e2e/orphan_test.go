package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/harness"
)

// orphanParentEnv turns the test binary into a parent that forks one child
// the way the harness forks every daemon, prints the child's PID and waits
// to be killed (TestChildrenDieWithTheTestBinary).
const orphanParentEnv = "EIPD_E2E_ORPHAN_PARENT"

func orphanParent() int {
	p, err := harness.Start("sleep", os.DevNull, "", nil, "sleep", "300")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fork:", err)
		return 1
	}
	fmt.Println(p.Pid())
	select {}
}

// TestChildrenDieWithTheTestBinary: a test binary killed from outside (an
// outer timeout, kill -9) takes the processes it started with it.
func TestChildrenDieWithTheTestBinary(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), orphanParentEnv+"=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = parent.Process.Kill(); _ = parent.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read the child's PID from the parent: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child PID %q: %v", line, err)
	}
	if !alive(child) {
		t.Fatalf("child %d is not running before its parent is killed: the test would prove nothing", child)
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("child %d still runs 10 s after its parent test binary was killed", child)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
