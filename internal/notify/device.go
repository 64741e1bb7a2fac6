package notify

import (
	"strings"

	"campusid/internal/i18n"
)

// Device describes a user agent for people: "Firefox sur Linux".
func Device(l i18n.Localizer, ua string) string {
	browser, os := "", ""
	switch {
	case strings.Contains(ua, "Edg/"):
		browser = "Edge"
	case strings.Contains(ua, "OPR/"):
		browser = "Opera"
	case strings.Contains(ua, "Firefox/"):
		browser = "Firefox"
	case strings.Contains(ua, "Chromium/"):
		browser = "Chromium"
	case strings.Contains(ua, "Chrome/"):
		browser = "Chrome"
	case strings.Contains(ua, "Safari/"):
		browser = "Safari"
	}
	switch {
	case strings.Contains(ua, "Android"):
		os = "Android"
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"):
		os = "iOS"
	case strings.Contains(ua, "Windows"):
		os = "Windows"
	case strings.Contains(ua, "Mac OS X"), strings.Contains(ua, "Macintosh"):
		os = "macOS"
	case strings.Contains(ua, "CrOS"):
		os = "ChromeOS"
	case strings.Contains(ua, "Linux"):
		os = "Linux"
	}
	switch {
	case browser != "" && os != "":
		return l.T("account.device", browser, os)
	case browser != "":
		return browser
	case os != "":
		return os
	case ua != "":
		if len(ua) > 60 {
			ua = ua[:60] + "…"
		}
		return ua
	}
	return l.T("account.device_unknown")
}
