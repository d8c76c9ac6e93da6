//go:build !race

package livechat

const raceEnabled = false
